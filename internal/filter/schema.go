package filter

// Entity is what the left side of a clause names.
type Entity int

const (
	Attribute Entity = iota + 1 // a column of the searched object: status, name, start_time ...
	Metric                      // a run's latest metric value
	Param                       // a run's parameter
	Tag                         // a tag of the searched object
	Dataset                     // a dataset logged as a run input: name, digest or context
)

func (e Entity) String() string {
	switch e {
	case Attribute:
		return "attribute"
	case Metric:
		return "metric"
	case Param:
		return "param"
	case Tag:
		return "tag"
	case Dataset:
		return "dataset"
	}
	return "unknown"
}

// prefixes maps every spelling MLflow accepts before the dot to an entity.
var prefixes = map[string]Entity{
	"attribute": Attribute, "attributes": Attribute, "attr": Attribute, "run": Attribute,
	"metric": Metric, "metrics": Metric,
	"param": Param, "params": Param, "parameter": Param, "parameters": Param,
	"tag": Tag, "tags": Tag,
	"dataset": Dataset, "datasets": Dataset,
}

// AttrType says which values and operators an attribute takes.
type AttrType int

const (
	String  AttrType = iota // quoted strings; = != LIKE ILIKE, and IN / NOT IN when List
	Numeric                 // numbers; = != < <= > >=
)

// Attr describes one searchable attribute.
type Attr struct {
	Key  string   // canonical name put in Clause.Key (aliases resolve to it)
	Type AttrType //
	List bool     // IN / NOT IN with a list of strings is allowed
}

// Schema is what one search endpoint accepts. The package's schemas (Runs,
// Experiments, RegisteredModels, ModelVersions) are shared and must not be
// modified; build a new Schema for another search.
type Schema struct {
	Name string // plural noun used in messages: "runs", "experiments"

	// Entities that may appear in a filter besides Attribute, which is
	// always allowed.
	Entities []Entity
	// Attrs maps every accepted spelling of an attribute to its description.
	Attrs map[string]Attr
	// StringOps are the operators string attributes and datasets accept;
	// nil means = != LIKE ILIKE IN NOT IN.
	StringOps []string

	// OrderEntities are the entities order_by may name besides Attribute.
	OrderEntities []Entity
	// OrderAttrs maps every accepted spelling of a sortable attribute to its
	// canonical name.
	OrderAttrs map[string]string
}

func (s *Schema) allows(e Entity, list []Entity) bool {
	if e == Attribute {
		return true
	}
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

func (s *Schema) stringOps() []string {
	if s.StringOps != nil {
		return s.StringOps
	}
	return []string{"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
}

var (
	numericOps = []string{"=", "!=", ">", ">=", "<", "<="}
	textOps    = []string{"=", "!=", "LIKE", "ILIKE"} // params and tags
)

// datasetKeys are the dataset fields a run filter may compare.
var datasetKeys = map[string]bool{"name": true, "digest": true, "context": true}

// Runs is the schema of runs/search (MLflow's SearchUtils).
var Runs = &Schema{
	Name:     "runs",
	Entities: []Entity{Metric, Param, Tag, Dataset},
	Attrs: map[string]Attr{
		"run_id":          {Key: "run_id", Type: String, List: true},
		"run_name":        {Key: "run_name", Type: String},
		"run name":        {Key: "run_name", Type: String},
		"Run name":        {Key: "run_name", Type: String},
		"Run Name":        {Key: "run_name", Type: String},
		"status":          {Key: "status", Type: String},
		"user_id":         {Key: "user_id", Type: String},
		"artifact_uri":    {Key: "artifact_uri", Type: String},
		"lifecycle_stage": {Key: "lifecycle_stage", Type: String},
		"start_time":      {Key: "start_time", Type: Numeric},
		"end_time":        {Key: "end_time", Type: Numeric},
		"created":         {Key: "start_time", Type: Numeric},
		"Created":         {Key: "start_time", Type: Numeric},
	},
	OrderEntities: []Entity{Metric, Param, Tag},
	OrderAttrs: map[string]string{
		"run_id": "run_id", "run_name": "run_name", "status": "status", "user_id": "user_id",
		"artifact_uri": "artifact_uri", "lifecycle_stage": "lifecycle_stage",
		"start_time": "start_time", "end_time": "end_time",
		"created": "start_time", "Created": "start_time",
		"run name": "run_name", "Run name": "run_name", "Run Name": "run_name",
	},
}

// Experiments is the schema of experiments/search (SearchExperimentsUtils).
var Experiments = &Schema{
	Name:     "experiments",
	Entities: []Entity{Tag},
	Attrs: map[string]Attr{
		"name":             {Key: "name", Type: String},
		"creation_time":    {Key: "creation_time", Type: Numeric},
		"last_update_time": {Key: "last_update_time", Type: Numeric},
	},
	OrderAttrs: map[string]string{
		"name": "name", "experiment_id": "experiment_id",
		"creation_time": "creation_time", "last_update_time": "last_update_time",
	},
}

// RegisteredModels is the schema of registered-models/search (SearchModelUtils).
var RegisteredModels = &Schema{
	Name:     "registered models",
	Entities: []Entity{Tag},
	Attrs: map[string]Attr{
		"name": {Key: "name", Type: String},
	},
	OrderAttrs: map[string]string{
		"name":                   "name",
		"timestamp":              "creation_timestamp",
		"creation_timestamp":     "creation_timestamp",
		"last_updated_timestamp": "last_updated_timestamp",
	},
}

// ModelVersions is the schema of model-versions/search
// (SearchModelVersionUtils). "version" and "source" are accepted as short
// forms of MLflow's version_number and source_path.
var ModelVersions = &Schema{
	Name:     "model versions",
	Entities: []Entity{Tag},
	Attrs: map[string]Attr{
		"name":           {Key: "name", Type: String},
		"run_id":         {Key: "run_id", Type: String, List: true},
		"source_path":    {Key: "source_path", Type: String},
		"source":         {Key: "source_path", Type: String},
		"version_number": {Key: "version_number", Type: Numeric},
		"version":        {Key: "version_number", Type: Numeric},
	},
	// MLflow does not take NOT IN here.
	StringOps: []string{"=", "!=", "LIKE", "ILIKE", "IN"},
	OrderAttrs: map[string]string{
		"name":                   "name",
		"version_number":         "version_number",
		"version":                "version_number",
		"creation_timestamp":     "creation_timestamp",
		"last_updated_timestamp": "last_updated_timestamp",
	},
}

// LoggedModels is the schema of MLflow 3's logged-models/search. Times are
// accepted under MLflow's names and Forge's column names.
var LoggedModels = &Schema{
	Name:     "logged models",
	Entities: []Entity{Metric, Param, Tag},
	Attrs: map[string]Attr{
		"name":                   {Key: "name", Type: String},
		"model_id":               {Key: "model_id", Type: String, List: true},
		"model_type":             {Key: "model_type", Type: String},
		"status":                 {Key: "status", Type: String, List: true},
		"source_run_id":          {Key: "source_run_id", Type: String, List: true},
		"creation_time":          {Key: "creation_time", Type: Numeric},
		"creation_timestamp":     {Key: "creation_time", Type: Numeric},
		"last_updated_time":      {Key: "last_updated_time", Type: Numeric},
		"last_updated_timestamp": {Key: "last_updated_time", Type: Numeric},
	},
	OrderAttrs: map[string]string{
		"name": "name", "model_id": "model_id", "model_type": "model_type", "status": "status",
		"source_run_id": "source_run_id", "creation_time": "creation_time", "creation_timestamp": "creation_time",
		"last_updated_time": "last_updated_time", "last_updated_timestamp": "last_updated_time",
	},
}
