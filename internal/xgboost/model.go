// Package xgboost evaluates gradient-boosted tree models saved in XGBoost's
// JSON format (Booster.save_model("model.json"), XGBoost 1.x), in pure Go.
//
// Predictions match XGBoost 1.7's own predict() to float32 rounding: splits
// send x < threshold left, NaN follows the node's default direction, leaf
// values are summed in float32 in tree order starting from the base margin,
// and the objective's transform (sigmoid, softmax, exp ...) is applied last.
//
// A loaded Model is immutable, so one Model serves any number of goroutines.
package xgboost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/forge-mlops/forge"
)

// Tensor names of a tree model, as Triton's FIL backend names them. They
// are the one naming Forge uses for XGBoost, whether a model is registered
// (the recorded signature) or served straight from a model repository.
const (
	InputName  = "input__0"
	OutputName = "output__0"
)

// Info describes a loaded model.
type Info struct {
	Objective  string  // XGBoost objective name, e.g. "binary:logistic"
	NumFeature int     // columns each input row must have
	NumClass   int     // classes of a multi:* model; 0 otherwise
	NumTrees   int     // trees in the ensemble, all classes together
	BaseScore  float32 // base_score as stored (a probability for logistic objectives)
	Version    string  // XGBoost version that saved the file, "" if not recorded
}

// Model is a loaded XGBoost tree ensemble. Its methods are safe for
// concurrent use.
type Model struct {
	info       Info
	obj        *objective
	numGroup   int       // margins per row: NumClass for multi:*, else 1
	baseMargin float32   // base_score mapped to margin space
	nodes      []node    // every tree, each renumbered so a right child follows its left
	leaves     []float32 // leaf value of each node in nodes; 0 at splits
	roots      []int32   // index in nodes of each tree's root
	depths     []int32   // steps from each tree's root to its deepest leaf
	groups     []int32   // output group (class) each tree adds to
}

// node is one tree node in the flattened ensemble. The right child always
// sits at left+1, so a split needs one index and one comparison. A leaf
// points to itself with a NaN threshold, so a walk can take a fixed number
// of steps, the tree's depth, without testing for leaves on the way.
type node struct {
	cond    float32 // split threshold; NaN at a leaf
	feat    int32   // feature index tested; 0 at a leaf
	left    int32   // index of the left child in Model.nodes; the node itself at a leaf
	missing int32   // child taken when the feature is NaN (default_left); the node itself at a leaf
}

func (n *node) isLeaf(i int32) bool { return n.left == i }

// Info returns the model's description.
func (m *Model) Info() Info { return m.info }

// OutputsPerRow is the number of values Predict writes for each row:
// NumClass for multi:softprob, 1 for every other objective.
func (m *Model) OutputsPerRow() int { return m.obj.outputs(m.numGroup) }

// The subset of XGBoost's JSON model schema that prediction needs; the
// training statistics (loss_changes, sum_hessian, base_weights ...) are
// skipped. Integers that XGBoost stores as strings stay strings here and are
// parsed with field-specific errors.
type jsonModel struct {
	Learner *struct {
		LearnerModelParam *struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective *struct {
			Name string `json:"name"`
		} `json:"objective"`
		GradientBooster *struct {
			Name  string `json:"name"`
			Model *struct {
				Param *struct {
					NumTrees        string `json:"num_trees"`
					NumParallelTree string `json:"num_parallel_tree"`
				} `json:"gbtree_model_param"`
				TreeInfo []int      `json:"tree_info"`
				Trees    []jsonTree `json:"trees"`
			} `json:"model"`
		} `json:"gradient_booster"`
	} `json:"learner"`
	Version []int `json:"version"`
}

type jsonTree struct {
	LeftChildren    []int32   `json:"left_children"`
	RightChildren   []int32   `json:"right_children"`
	SplitIndices    []int64   `json:"split_indices"`
	SplitConditions []float32 `json:"split_conditions"` // float32 decoding rounds exactly as XGBoost wrote them
	DefaultLeft     flags     `json:"default_left"`
	SplitType       []int     `json:"split_type"`
	TreeParam       *struct {
		NumNodes string `json:"num_nodes"`
	} `json:"tree_param"`
}

// flags decodes default_left, which XGBoost 1.6+ writes as 0/1 numbers and
// older releases wrote as booleans.
type flags []bool

func (f *flags) UnmarshalJSON(b []byte) error {
	var ns []int
	if err := json.Unmarshal(b, &ns); err == nil {
		*f = make([]bool, len(ns))
		for i, n := range ns {
			(*f)[i] = n != 0
		}
		return nil
	}
	var bs []bool
	if err := json.Unmarshal(b, &bs); err != nil {
		return errors.New("default_left must be an array of 0/1 or booleans")
	}
	*f = bs
	return nil
}

// Load reads an XGBoost JSON model and checks it thoroughly, so that Predict
// never meets an index out of range or a loop. A file that is not a usable
// XGBoost model gives an error of kind forge.Invalid.
func Load(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read xgboost model: %w", err)
	}
	var jm jsonModel
	if err := json.Unmarshal(data, &jm); err != nil {
		return nil, decodeError(data, err)
	}
	return build(&jm)
}

func invalid(format string, args ...any) error {
	return forge.Errorf(forge.Invalid, "xgboost model: "+format, args...)
}

func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return invalid("file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &syn) && syn.Offset >= int64(len(data))):
		return invalid("truncated JSON (%d bytes)", len(data))
	case errors.As(err, &syn):
		return invalid("not valid JSON: %v (at byte %d)", err, syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "top level"
		}
		return invalid("field %s: expected %s, found JSON %s", field, typ.Type, typ.Value)
	}
	return invalid("%v", err)
}

func build(jm *jsonModel) (*Model, error) {
	l := jm.Learner
	switch {
	case l == nil:
		return nil, invalid(`no "learner" object; is this an XGBoost JSON model?`)
	case l.LearnerModelParam == nil:
		return nil, invalid(`missing learner.learner_model_param`)
	case l.Objective == nil || l.Objective.Name == "":
		return nil, invalid(`missing learner.objective.name`)
	case l.GradientBooster == nil:
		return nil, invalid(`missing learner.gradient_booster`)
	}
	if name := l.GradientBooster.Name; name != "gbtree" {
		return nil, invalid("booster %q is not supported (only gbtree)", name)
	}
	gb := l.GradientBooster.Model
	if gb == nil || gb.Param == nil {
		return nil, invalid("missing learner.gradient_booster.model.gbtree_model_param")
	}
	obj, ok := objectives[l.Objective.Name]
	if !ok {
		return nil, invalid("objective %q is not supported", l.Objective.Name)
	}

	p := l.LearnerModelParam
	numFeature, err := count("learner_model_param.num_feature", p.NumFeature, false)
	if err != nil {
		return nil, err
	}
	numClass, err := count("learner_model_param.num_class", p.NumClass, true)
	if err != nil {
		return nil, err
	}
	if p.NumTarget != "" && p.NumTarget != "0" && p.NumTarget != "1" {
		return nil, invalid("num_target %s: multi-target models are not supported", p.NumTarget)
	}
	numTrees, err := count("gbtree_model_param.num_trees", gb.Param.NumTrees, true)
	if err != nil {
		return nil, err
	}
	if numFeature == 0 {
		return nil, invalid("num_feature is 0")
	}
	base, err := parseBaseScore(p.BaseScore)
	if err != nil {
		return nil, err
	}
	numGroup := 1
	if obj.multiclass {
		if numClass < 1 {
			return nil, invalid("objective %s needs num_class >= 1, found %d", obj.name, numClass)
		}
		numGroup = numClass
	} else if numClass > 1 {
		return nil, invalid("objective %s cannot have num_class %d", obj.name, numClass)
	}
	margin, err := obj.baseMargin(base)
	if err != nil {
		return nil, invalid("base_score %v: %v", base, err)
	}

	if len(gb.Trees) != numTrees {
		return nil, invalid("num_trees is %d but %d trees are stored", numTrees, len(gb.Trees))
	}
	if len(gb.TreeInfo) != numTrees {
		return nil, invalid("tree_info has %d entries for %d trees", len(gb.TreeInfo), numTrees)
	}
	m := &Model{
		info: Info{
			Objective:  obj.name,
			NumFeature: numFeature,
			NumClass:   numClass,
			NumTrees:   numTrees,
			BaseScore:  base,
			Version:    version(jm.Version),
		},
		obj:        obj,
		numGroup:   numGroup,
		baseMargin: margin,
		roots:      make([]int32, numTrees),
		depths:     make([]int32, numTrees),
		groups:     make([]int32, numTrees),
	}
	total := 0
	for _, t := range gb.Trees {
		total += len(t.LeftChildren)
	}
	if total > math.MaxInt32/2 {
		return nil, invalid("%d nodes is too many", total)
	}
	m.nodes = make([]node, 0, total)
	m.leaves = make([]float32, 0, total)
	for i := range gb.Trees {
		g := gb.TreeInfo[i]
		if g < 0 || g >= numGroup {
			return nil, invalid("tree_info[%d] is %d, outside [0, %d)", i, g, numGroup)
		}
		m.groups[i] = int32(g)
		m.roots[i] = int32(len(m.nodes))
		if m.depths[i], err = m.appendTree(&gb.Trees[i], numFeature); err != nil {
			return nil, invalid("tree %d: %v", i, err)
		}
	}
	return m, nil
}

// appendTree checks one tree, appends its nodes to m.nodes in breadth-first
// order with each right child next to its left one, and returns its depth.
// The walk marks what it has seen, so a malformed file whose child links
// form a loop or share a node is rejected instead of sending Predict round
// in circles.
func (m *Model) appendTree(t *jsonTree, numFeature int) (int32, error) {
	n := len(t.LeftChildren)
	if t.TreeParam == nil {
		return 0, errors.New("missing tree_param")
	}
	if nn, err := strconv.Atoi(t.TreeParam.NumNodes); err != nil || nn != n {
		return 0, fmt.Errorf("tree_param.num_nodes is %q but left_children has %d entries", t.TreeParam.NumNodes, n)
	}
	if n == 0 {
		return 0, errors.New("tree has no nodes")
	}
	for _, a := range []struct {
		name string
		len  int
	}{
		{"right_children", len(t.RightChildren)},
		{"split_indices", len(t.SplitIndices)},
		{"split_conditions", len(t.SplitConditions)},
		{"default_left", len(t.DefaultLeft)},
	} {
		if a.len != n {
			return 0, fmt.Errorf("%s has %d entries, left_children %d", a.name, a.len, n)
		}
	}
	if t.SplitType != nil && len(t.SplitType) != n {
		return 0, fmt.Errorf("split_type has %d entries, left_children %d", len(t.SplitType), n)
	}

	base := int32(len(m.nodes))
	seen := make([]bool, n)
	seen[0] = true
	order := make([]int32, 1, n) // original ids in breadth-first order: the new numbering
	level := make([]int32, 1, n) // depth of each node in order
	var depth int32
	for k := 0; k < len(order); k++ {
		id, self := order[k], base+int32(k)
		depth = max(depth, level[k])
		l, r := t.LeftChildren[id], t.RightChildren[id]
		if l == -1 && r == -1 {
			m.nodes = append(m.nodes, node{cond: float32(math.NaN()), left: self, missing: self})
			m.leaves = append(m.leaves, t.SplitConditions[id])
			continue
		}
		if l < 0 || int(l) >= n || r < 0 || int(r) >= n {
			return 0, fmt.Errorf("node %d has children %d and %d, outside [0, %d)", id, l, r, n)
		}
		if seen[l] || seen[r] || l == r {
			return 0, fmt.Errorf("node %d: child %d or %d is reached twice (not a tree)", id, l, r)
		}
		seen[l], seen[r] = true, true
		if t.SplitType != nil && t.SplitType[id] != 0 {
			return 0, fmt.Errorf("node %d is a categorical split, which is not supported", id)
		}
		f := t.SplitIndices[id]
		if f < 0 || f >= int64(numFeature) {
			return 0, fmt.Errorf("node %d splits on feature %d, but the model has %d features", id, f, numFeature)
		}
		left := base + int32(len(order))
		order = append(order, l, r)
		level = append(level, level[k]+1, level[k]+1)
		missing := left + 1
		if t.DefaultLeft[id] {
			missing = left
		}
		m.nodes = append(m.nodes, node{cond: t.SplitConditions[id], feat: int32(f), left: left, missing: missing})
		m.leaves = append(m.leaves, 0)
	}
	return depth, nil
}

// count parses one of the non-negative integers XGBoost stores as strings.
func count(field, s string, zeroIfEmpty bool) (int, error) {
	if s == "" && zeroIfEmpty {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil || v < 0 {
		return 0, invalid("%s is %q, not a non-negative integer", field, s)
	}
	return int(v), nil
}

// parseBaseScore reads base_score as float32, XGBoost's own type for it.
// XGBoost 3 writes it as a one-element list, "[5E-1]".
func parseBaseScore(s string) (float32, error) {
	t := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	v, err := strconv.ParseFloat(t, 32)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, invalid("base_score is %q, not a finite number", s)
	}
	return float32(v), nil
}

func version(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ".")
}
