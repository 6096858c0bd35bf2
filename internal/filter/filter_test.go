package filter

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/forge-mlops/forge"
	"github.com/google/go-cmp/cmp"
)

func num(f float64) Value                       { return Value{Kind: NumberValue, Num: f} }
func str(s string) Value                        { return Value{Kind: StringValue, Str: s} }
func list(s ...string) Value                    { return Value{Kind: ListValue, List: s} }
func cl(e Entity, k, op string, v Value) Clause { return Clause{Entity: e, Key: k, Op: op, Value: v} }

// The expected ASTs follow MLflow's SearchUtils: prefix aliases, attribute
// aliases (created -> start_time), comparator sets per entity.
func TestParseValid(t *testing.T) {
	tests := []struct {
		in     string
		schema *Schema
		want   []Clause
	}{
		{"", Runs, nil},
		{"   \t\n", Runs, nil},
		{"metrics.acc > 0.9", Runs, []Clause{cl(Metric, "acc", ">", num(0.9))}},
		{"metric.acc>=1", Runs, []Clause{cl(Metric, "acc", ">=", num(1))}},
		{"metrics.loss<-1.5e-3", Runs, []Clause{cl(Metric, "loss", "<", num(-1.5e-3))}},
		{"metrics.loss <= .5", Runs, []Clause{cl(Metric, "loss", "<=", num(.5))}},
		{"metrics.loss != +2", Runs, []Clause{cl(Metric, "loss", "!=", num(2))}},
		{"metrics.loss = 1E3", Runs, []Clause{cl(Metric, "loss", "=", num(1000))}},
		{"params.model = 'LogisticRegression' and params.lambda = \"0.001\" and metrics.error <= 0.05", Runs, []Clause{
			cl(Param, "model", "=", str("LogisticRegression")),
			cl(Param, "lambda", "=", str("0.001")),
			cl(Metric, "error", "<=", num(0.05)),
		}},
		{"param.a != 'x'", Runs, []Clause{cl(Param, "a", "!=", str("x"))}},
		{"parameter.a LIKE '%x%'", Runs, []Clause{cl(Param, "a", "LIKE", str("%x%"))}},
		{"parameters.a ilike 'X_'", Runs, []Clause{cl(Param, "a", "ILIKE", str("X_"))}},
		{"tags.mlflow.runName = 'r1'", Runs, []Clause{cl(Tag, "mlflow.runName", "=", str("r1"))}},
		{"tag.`mlflow.user` LiKe 'a%'", Runs, []Clause{cl(Tag, "mlflow.user", "LIKE", str("a%"))}},
		{"metrics.`my metric` < 3", Runs, []Clause{cl(Metric, "my metric", "<", num(3))}},
		{`metrics."error rate" < 3`, Runs, []Clause{cl(Metric, "error rate", "<", num(3))}},
		{`params."model-type" = 'cnn'`, Runs, []Clause{cl(Param, "model-type", "=", str("cnn"))}},
		{"metrics.`2023_acc` > 0", Runs, []Clause{cl(Metric, "2023_acc", ">", num(0))}},
		{"metrics.`a``b` > 0", Runs, []Clause{cl(Metric, "a`b", ">", num(0))}},
		{"`metrics`.`acc` > 0", Runs, []Clause{cl(Metric, "acc", ">", num(0))}},
		{"`metrics`.acc > 0", Runs, []Clause{cl(Metric, "acc", ">", num(0))}},
		{"tags.note = 'it''s'", Runs, []Clause{cl(Tag, "note", "=", str("it's"))}},
		{`tags.note = "say ""hi"""`, Runs, []Clause{cl(Tag, "note", "=", str(`say "hi"`))}},
		{"tags.note = ''", Runs, []Clause{cl(Tag, "note", "=", str(""))}},
		{"tags.note = 'naïve ✓'", Runs, []Clause{cl(Tag, "note", "=", str("naïve ✓"))}},
		{"attributes.status = 'FAILED'", Runs, []Clause{cl(Attribute, "status", "=", str("FAILED"))}},
		{"attribute.status != 'RUNNING'", Runs, []Clause{cl(Attribute, "status", "!=", str("RUNNING"))}},
		{"attr.run_name ILIKE '%good%'", Runs, []Clause{cl(Attribute, "run_name", "ILIKE", str("%good%"))}},
		{"run.user_id = 'me'", Runs, []Clause{cl(Attribute, "user_id", "=", str("me"))}},
		{"status = 'FINISHED'", Runs, []Clause{cl(Attribute, "status", "=", str("FINISHED"))}},
		{"start_time >= 1700000000000", Runs, []Clause{cl(Attribute, "start_time", ">=", num(1700000000000))}},
		{"end_time < 5", Runs, []Clause{cl(Attribute, "end_time", "<", num(5))}},
		{"created > 10", Runs, []Clause{cl(Attribute, "start_time", ">", num(10))}},
		{"attributes.Created > 10", Runs, []Clause{cl(Attribute, "start_time", ">", num(10))}},
		{"attributes.`Run name` = 'x'", Runs, []Clause{cl(Attribute, "run_name", "=", str("x"))}},
		{`"run name" = 'x'`, Runs, []Clause{cl(Attribute, "run_name", "=", str("x"))}},
		{"artifact_uri LIKE 's3://%'", Runs, []Clause{cl(Attribute, "artifact_uri", "LIKE", str("s3://%"))}},
		{"lifecycle_stage = 'active'", Runs, []Clause{cl(Attribute, "lifecycle_stage", "=", str("active"))}},
		{"attributes.run_id IN ('a1', \"b2\")", Runs, []Clause{cl(Attribute, "run_id", "IN", list("a1", "b2"))}},
		{"run_id in ('a1')", Runs, []Clause{cl(Attribute, "run_id", "IN", list("a1"))}},
		{"run_id NOT IN ('a','b','c')", Runs, []Clause{cl(Attribute, "run_id", "NOT IN", list("a", "b", "c"))}},
		{"run_id not  in('a')", Runs, []Clause{cl(Attribute, "run_id", "NOT IN", list("a"))}},
		{"run_id = 'abc'", Runs, []Clause{cl(Attribute, "run_id", "=", str("abc"))}},
		{"datasets.name = 'iris'", Runs, []Clause{cl(Dataset, "name", "=", str("iris"))}},
		{"dataset.digest IN ('d1', 'd2')", Runs, []Clause{cl(Dataset, "digest", "IN", list("d1", "d2"))}},
		{"datasets.context LIKE 'tr%'", Runs, []Clause{cl(Dataset, "context", "LIKE", str("tr%"))}},
		{"metrics.a>1 AND metrics.b<2 aNd tags.c='d'", Runs, []Clause{
			cl(Metric, "a", ">", num(1)), cl(Metric, "b", "<", num(2)), cl(Tag, "c", "=", str("d")),
		}},

		{"name = 'exp'", Experiments, []Clause{cl(Attribute, "name", "=", str("exp"))}},
		{"attribute.name LIKE 'a%' AND tags.team = 'ml'", Experiments, []Clause{
			cl(Attribute, "name", "LIKE", str("a%")), cl(Tag, "team", "=", str("ml")),
		}},
		{"creation_time > 100 and last_update_time <= 200", Experiments, []Clause{
			cl(Attribute, "creation_time", ">", num(100)), cl(Attribute, "last_update_time", "<=", num(200)),
		}},

		{"name ILIKE '%net%'", RegisteredModels, []Clause{cl(Attribute, "name", "ILIKE", str("%net%"))}},
		{"tags.`stage` = 'prod'", RegisteredModels, []Clause{cl(Tag, "stage", "=", str("prod"))}},

		{"name = 'm' AND version_number > 2", ModelVersions, []Clause{
			cl(Attribute, "name", "=", str("m")), cl(Attribute, "version_number", ">", num(2)),
		}},
		{"version = 3", ModelVersions, []Clause{cl(Attribute, "version_number", "=", num(3))}},
		{"source LIKE 'runs:/%'", ModelVersions, []Clause{cl(Attribute, "source_path", "LIKE", str("runs:/%"))}},
		{"run_id IN ('r1','r2')", ModelVersions, []Clause{cl(Attribute, "run_id", "IN", list("r1", "r2"))}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.schema)
		if err != nil {
			t.Errorf("Parse(%q, %s): %v", tt.in, tt.schema.Name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q, %s) mismatch (-want +got):\n%s", tt.in, tt.schema.Name, diff)
			continue
		}
		// What String renders must read back to the same clauses.
		again, err := Parse(Format(got), tt.schema)
		if err != nil {
			t.Errorf("Parse(Format(%q)) = %q: %v", tt.in, Format(got), err)
		} else if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("round trip of %q via %q (-first +second):\n%s", tt.in, Format(got), diff)
		}
	}
}

var posRE = regexp.MustCompile(`at position (\d+)`)

// errPos checks that err is a forge.Invalid naming a position, and returns it.
func errPos(t *testing.T, in string, err error) int {
	t.Helper()
	if err == nil {
		t.Fatalf("%q: got no error", in)
	}
	if !forge.IsKind(err, forge.Invalid) {
		t.Fatalf("%q: error kind is %v, want invalid: %v", in, forge.KindOf(err), err)
	}
	m := posRE.FindStringSubmatch(forge.Message(err))
	if m == nil {
		t.Fatalf("%q: message has no position: %v", in, err)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		in     string
		schema *Schema
		pos    int    // character offset of the offending token
		msg    string // a part of the message
	}{
		{"metrics.x >", Runs, 11, "expected a value"},
		{"metrics.x", Runs, 9, "expected an operator"},
		{"metrics.x > 1 AND", Runs, 17, "expected an identifier"},
		{"metrics.x > 1 AND AND metrics.y > 1", Runs, 18, `found "AND"`},
		{"metrics.x > 1 OR metrics.y > 1", Runs, 14, "OR is not supported"},
		{"metrics.x > 1 metrics.y > 1", Runs, 14, "expected AND"},
		{"metrics.x > 'a'", Runs, 12, `expected a number for metric "x"`},
		{"metrics.x LIKE 'a'", Runs, 10, "operator LIKE is not valid for metric"},
		{"metrics.x IN ('a')", Runs, 10, "operator IN is not valid"},
		{"params.p > 'a'", Runs, 9, "operator > is not valid for param"},
		{"params.p = 1", Runs, 11, "expected a quoted string"},
		{"params.p = `x`", Runs, 11, "expected a quoted string"},
		{"params.p = abc", Runs, 11, `found "abc"`},
		{"tags.t IN ('a')", Runs, 7, "operator IN is not valid for tag"},
		{"status > 'a'", Runs, 7, "operator > is not valid"},
		{"status IN ('a')", Runs, 7, "IN is only valid for run_id"},
		{"start_time = 'yesterday'", Runs, 13, "expected a number"},
		{"start_time LIKE '1%'", Runs, 11, "operator LIKE"},
		{"foo = 'x'", Runs, 0, `unknown attribute "foo"`},
		{"attributes.foo = 'x'", Runs, 0, `unknown attribute "foo"`},
		{"metric.`x`y = 1", Runs, 10, "expected an operator"},
		{"metrics.a``b > 0", Runs, 9, "expected an operator"},
		{"nope.x = 1", Runs, 0, `unknown entity type "nope"`},
		{"Metrics.x = 1", Runs, 0, "unknown entity type"},
		{"metrics. = 1", Runs, 9, "expected a key"},
		{"metrics.`` = 1", Runs, 8, "empty key"},
		{"datasets.size = 'x'", Runs, 0, `unknown dataset key "size"`},
		{"run_id IN ()", Runs, 11, "non-empty list"},
		{"run_id IN ('a',)", Runs, 15, "expected a quoted string in the list"},
		{"run_id IN ('a' 'b')", Runs, 15, "expected , or )"},
		{"run_id IN ('a'", Runs, 14, "expected , or )"},
		{"run_id IN 'a'", Runs, 10, "expected a list"},
		{"run_id IN (1)", Runs, 11, "expected a quoted string in the list"},
		{"run_id NOT 'a'", Runs, 11, "expected IN after NOT"},
		{"run_id == 'a'", Runs, 7, "unknown operator"},
		{"run_id <> 'a'", Runs, 7, "unknown operator"},
		{"run_id ! 'a'", Runs, 7, "expected an operator"},
		{"tags.t = 'abc", Runs, 9, "unterminated quote"},
		{"tags.`t = 'abc'", Runs, 5, "unterminated quote"},
		{"metrics.x > 1.2.3", Runs, 12, `found "1.2.3"`},
		{"metrics.x > 1e999", Runs, 12, "out of range"},
		{"metrics.x > 12abc", Runs, 12, `found "12abc"`},
		{"metrics.x > NaN", Runs, 12, "expected a number"},
		{"(metrics.x > 1)", Runs, 0, "expected an identifier"},
		{"metrics.x > 1;", Runs, 13, "expected AND"},
		{"metrics.x > 1 AND metrics.y = ", Runs, 30, "expected a value"},
		{"tags.naïve = 1", Runs, 13, "expected a quoted string"}, // characters, not bytes
		{"= 1", Runs, 0, "expected an identifier"},

		{"metrics.x > 1", Experiments, 0, "experiments cannot be searched by metric"},
		{"params.x = 'a'", Experiments, 0, "cannot be searched by param"},
		{"status = 'a'", Experiments, 0, `unknown attribute "status"`},
		{"creation_time = 'a'", Experiments, 16, "expected a number"},
		{"name IN ('a')", Experiments, 5, "IN is only valid"},
		{"datasets.name = 'x'", RegisteredModels, 0, "registered models cannot be searched by dataset"},
		{"version_number = 'x'", ModelVersions, 17, "expected a number"},
		{"run_id NOT IN ('a')", ModelVersions, 7, "operator NOT IN is not valid"},
		{"source_path IN ('a')", ModelVersions, 12, "IN is only valid"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in, tt.schema)
		if pos := errPos(t, tt.in, err); pos != tt.pos {
			t.Errorf("Parse(%q, %s): position %d, want %d: %v", tt.in, tt.schema.Name, pos, tt.pos, err)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Parse(%q, %s): error %q does not contain %q", tt.in, tt.schema.Name, err, tt.msg)
		}
	}
}

func TestErrorMessageShape(t *testing.T) {
	_, err := Parse("metrics.x >", Runs)
	want := `invalid filter "metrics.x >": expected a value at position 11`
	if got := forge.Message(err); got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	_, err = Parse("metrics.x > abc", Runs)
	want = `invalid filter "metrics.x > abc": expected a number for metric "x" at position 12, found "abc"`
	if got := forge.Message(err); got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	// A huge filter is cut in the message.
	long := "metrics.x > " + strings.Repeat("a", 10000)
	_, err = Parse(long, Runs)
	if n := len(forge.Message(err)); n > 300 {
		t.Errorf("message for a 10 kB filter is %d bytes long", n)
	}
}

func TestValueArg(t *testing.T) {
	if got := num(1.5).Arg(); got != 1.5 {
		t.Errorf("Arg of number = %v", got)
	}
	if got := str("a").Arg(); got != "a" {
		t.Errorf("Arg of string = %v", got)
	}
	if diff := cmp.Diff([]string{"a", "b"}, list("a", "b").Arg()); diff != "" {
		t.Errorf("Arg of list: %s", diff)
	}
	if n, ok := num(1700000000123).Int(); !ok || n != 1700000000123 {
		t.Errorf("Int of 1700000000123 = %d, %v", n, ok)
	}
	if _, ok := num(1.5).Int(); ok {
		t.Error("Int of 1.5 reported ok")
	}
	if _, ok := str("1").Int(); ok {
		t.Error("Int of a string reported ok")
	}
}

func TestParseOrderBy(t *testing.T) {
	tests := []struct {
		in     []string
		schema *Schema
		want   []OrderBy
	}{
		{nil, Runs, []OrderBy{}},
		{[]string{"metrics.acc DESC", "params.lr", "attributes.start_time ASC"}, Runs, []OrderBy{
			{Entity: Metric, Key: "acc", Desc: true},
			{Entity: Param, Key: "lr"},
			{Entity: Attribute, Key: "start_time"},
		}},
		{[]string{"metrics.`my metric` desc"}, Runs, []OrderBy{{Entity: Metric, Key: "my metric", Desc: true}}},
		{[]string{`tags."mlflow.runName" asc`}, Runs, []OrderBy{{Entity: Tag, Key: "mlflow.runName"}}},
		{[]string{"tags.mlflow.runName"}, Runs, []OrderBy{{Entity: Tag, Key: "mlflow.runName"}}},
		{[]string{"created DESC"}, Runs, []OrderBy{{Entity: Attribute, Key: "start_time", Desc: true}}},
		{[]string{"`Run Name`"}, Runs, []OrderBy{{Entity: Attribute, Key: "run_name"}}},
		{[]string{"  end_time   DESC  "}, Runs, []OrderBy{{Entity: Attribute, Key: "end_time", Desc: true}}},
		{[]string{"experiment_id", "name DESC"}, Experiments, []OrderBy{
			{Entity: Attribute, Key: "experiment_id"}, {Entity: Attribute, Key: "name", Desc: true},
		}},
		{[]string{"timestamp DESC"}, RegisteredModels, []OrderBy{{Entity: Attribute, Key: "creation_timestamp", Desc: true}}},
		{[]string{"version_number DESC", "last_updated_timestamp"}, ModelVersions, []OrderBy{
			{Entity: Attribute, Key: "version_number", Desc: true}, {Entity: Attribute, Key: "last_updated_timestamp"},
		}},
	}
	for _, tt := range tests {
		got, err := ParseOrderBy(tt.in, tt.schema)
		if err != nil {
			t.Errorf("ParseOrderBy(%q, %s): %v", tt.in, tt.schema.Name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseOrderBy(%q, %s) (-want +got):\n%s", tt.in, tt.schema.Name, diff)
		}
		for _, o := range got {
			again, err := ParseOrderBy([]string{o.String()}, tt.schema)
			if err != nil || again[0] != o {
				t.Errorf("round trip of %+v via %q: %+v, %v", o, o.String(), again, err)
			}
		}
	}
}

func TestParseOrderByInvalid(t *testing.T) {
	tests := []struct {
		in     string
		schema *Schema
		pos    int
		msg    string
	}{
		{"metrics.acc DOWN", Runs, 12, "expected ASC, DESC"},
		{"metrics.acc DESC extra", Runs, 17, "expected the end"},
		{"metrics.acc, params.x", Runs, 11, "expected ASC, DESC"},
		{"", Runs, 0, "expected an identifier"},
		{"datasets.name", Runs, 0, "runs cannot be searched by dataset"},
		{"foo", Runs, 0, `cannot order runs by attribute "foo"`},
		{"tags.x", Experiments, 0, "experiments cannot be searched by tag"},
		{"status", Experiments, 0, "cannot order experiments"},
		{"version", RegisteredModels, 0, "cannot order registered models"},
	}
	for _, tt := range tests {
		_, err := ParseOrderBy([]string{"metrics.ok", tt.in}, tt.schema)
		if tt.schema != Runs {
			_, err = ParseOrderBy([]string{tt.in}, tt.schema)
		}
		if pos := errPos(t, tt.in, err); pos != tt.pos {
			t.Errorf("ParseOrderBy(%q): position %d, want %d: %v", tt.in, pos, tt.pos, err)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseOrderBy(%q): error %q does not contain %q", tt.in, err, tt.msg)
		}
		if !strings.Contains(err.Error(), "invalid order_by clause") {
			t.Errorf("ParseOrderBy(%q): error %q does not name the order_by clause", tt.in, err)
		}
	}
}

// FuzzParse checks that no input panics, that every error is a positioned
// forge.Invalid, and that accepted filters survive a Format/Parse round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"metrics.acc > 0.9 AND params.lr = '0.1'",
		"tags.`a``b` LIKE '%x%' and run_id NOT IN ('a', \"b\")",
		`"run name" = 'x' AND datasets.context = 'train' AND created >= -1e3`,
		"metrics.x > 1 OR y", "run_id IN (", "'", "`metrics`.`x` < .5", "naïve.é = 'ü'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, schema := range []*Schema{Runs, ModelVersions} {
			got, err := Parse(s, schema)
			if err != nil {
				if !forge.IsKind(err, forge.Invalid) || !posRE.MatchString(err.Error()) {
					t.Fatalf("Parse(%q): error without kind or position: %v", s, err)
				}
				continue
			}
			again, err := Parse(Format(got), schema)
			if err != nil {
				t.Fatalf("Parse(Format(%q)) = %q: %v", s, Format(got), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Fatalf("round trip of %q via %q:\n%s", s, Format(got), diff)
			}
		}
		if _, err := ParseOrderBy([]string{s}, Runs); err != nil && !forge.IsKind(err, forge.Invalid) {
			t.Fatalf("ParseOrderBy(%q): %v", s, err)
		}
	})
}
