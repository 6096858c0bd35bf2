// Package oip holds the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService), generated from grpc_predict_v2.proto.
// The generated files are committed so a build never needs protoc; to
// regenerate, install protoc, protoc-gen-go v1.36.12 and protoc-gen-go-grpc
// v1.5.1, then run go generate.
package oip

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative grpc_predict_v2.proto
