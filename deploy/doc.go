// Package deploy holds what installs Forge on a cluster and watches it
// there: the Helm chart (helm/forge) and the Grafana dashboard
// (grafana/forge.json). It has no code; its tests render the chart with
// Helm's Go library, run it on a real kube-apiserver, and check that the
// dashboard asks only for metrics Forge exports.
package deploy
