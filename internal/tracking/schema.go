package tracking

import "github.com/forge-mlops/forge/internal/httpapi"

// MLflow's request schemas (mlflow/server/handlers.py, 2.12): each route's
// fields in the order MLflow's server checks them, so that Forge reports
// the same first problem in the same words.

func str(name string) httpapi.Param { return httpapi.Param{Name: name, Type: httpapi.StringType} }
func reqd(name string) httpapi.Param {
	return httpapi.Param{Name: name, Type: httpapi.StringType, Required: true}
}
func num(name string) httpapi.Param   { return httpapi.Param{Name: name, Type: httpapi.IntType} }
func array(name string) httpapi.Param { return httpapi.Param{Name: name, Type: httpapi.ArrayType} }

var (
	createExperimentSchema = []httpapi.Param{reqd("name"), str("artifact_location"), array("tags")}
	experimentIDSchema     = []httpapi.Param{reqd("experiment_id")}
	byNameSchema           = []httpapi.Param{reqd("experiment_name")}
	searchExpSchema        = []httpapi.Param{num("view_type"), num("max_results"), array("order_by"), str("filter"), str("page_token")}
	updateExpSchema        = []httpapi.Param{reqd("experiment_id"), reqd("new_name")}
	expTagSchema           = []httpapi.Param{reqd("experiment_id"), reqd("key"), str("value")}
	createRunSchema        = []httpapi.Param{str("experiment_id"), num("start_time"), str("run_name")}
	updateRunSchema        = []httpapi.Param{reqd("run_id"), num("end_time"), str("status"), str("run_name")}
	runIDSchema            = []httpapi.Param{reqd("run_id")}
	logMetricSchema        = []httpapi.Param{reqd("run_id"), reqd("key"), {Name: "value", Type: httpapi.FloatType, Required: true},
		num("timestamp"), num("step")}
	keyValueSchema   = []httpapi.Param{reqd("run_id"), reqd("key"), str("value")}
	deleteTagSchema  = []httpapi.Param{reqd("run_id"), reqd("key")}
	logBatchSchema   = []httpapi.Param{reqd("run_id"), array("metrics"), array("params"), array("tags")}
	logModelSchema   = []httpapi.Param{reqd("run_id"), reqd("model_json")}
	logInputsSchema  = []httpapi.Param{reqd("run_id"), {Name: "datasets", Type: httpapi.ArrayType, Required: true}}
	searchRunsSchema = []httpapi.Param{array("experiment_ids"), str("filter"), num("max_results"), array("order_by")}
	historySchema    = []httpapi.Param{reqd("run_id"), reqd("metric_key")}
	bulkSchema       = []httpapi.Param{{Name: "run_ids", Type: httpapi.ArrayType, Required: true}, reqd("metric_key"),
		num("start_step"), num("end_step"), num("max_results")}
	listArtifactsSchema = []httpapi.Param{reqd("run_id"), str("path"), str("page_token")}
)
