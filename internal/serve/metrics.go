package serve

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are named after Triton's (nv_inference_*), labelled model and
// version, so dashboards built for Triton work on Forge; request series also
// carry deployment, the route called ("" for a model called by its own
// name), since one version may serve several deployments. Executions are
// per version: a batch may hold requests of several deployments. Triton reports
// durations as cumulative microsecond counters; the latency histograms,
// which Triton does not have under these names, carry Forge's prefix.
type metrics struct {
	success, failure, count, execCount *prometheus.CounterVec
	requestUs, queueUs, computeUs      *prometheus.CounterVec
	requestSeconds, computeSeconds     *prometheus.HistogramVec
}

var failureReasons = []string{"REJECTED", "CANCELED", "BACKEND", "OTHER"}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"model", "version", "deployment"}
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(labels, extra...))
	}
	buckets := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &metrics{
		success:   counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes."),
		failure:   counter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes, by reason.", "reason"),
		count:     counter("nv_inference_count", "Number of inferences performed (a batch of n rows counts n; failed requests not counted)."),
		execCount: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nv_inference_exec_count", Help: "Number of model executions performed (a batch counts once)."}, labels[:2]),
		requestUs: counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (queue and compute included)."),
		queueUs:   counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds."),
		computeUs: counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds."),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "forge_inference_request_duration_seconds", Help: "Inference request latency, from resolving the model to the result.", Buckets: buckets,
		}, labels),
		computeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "forge_inference_compute_duration_seconds", Help: "Model execution latency, per execution.", Buckets: buckets,
		}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.success, m.failure, m.count, m.execCount, m.requestUs, m.queueUs, m.computeUs, m.requestSeconds, m.computeSeconds)
	}
	return m
}

// versionMetrics holds one version's series, looked up once at load so the
// request path does no label hashing.
type versionMetrics struct {
	success, count, execs, requestUs, queueUs, computeUs prometheus.Counter
	failure                                              map[string]prometheus.Counter
	requestSeconds, computeSeconds                       prometheus.Observer
}

func (m *metrics) forVersion(model, version, deployment string) *versionMetrics {
	vm := &versionMetrics{
		success:        m.success.WithLabelValues(model, version, deployment),
		count:          m.count.WithLabelValues(model, version, deployment),
		execs:          m.execCount.WithLabelValues(model, version),
		requestUs:      m.requestUs.WithLabelValues(model, version, deployment),
		queueUs:        m.queueUs.WithLabelValues(model, version, deployment),
		computeUs:      m.computeUs.WithLabelValues(model, version, deployment),
		failure:        map[string]prometheus.Counter{},
		requestSeconds: m.requestSeconds.WithLabelValues(model, version, deployment),
		computeSeconds: m.computeSeconds.WithLabelValues(model, version, deployment),
	}
	for _, r := range failureReasons {
		vm.failure[r] = m.failure.WithLabelValues(model, version, deployment, r)
	}
	return vm
}

// exec counts model executions.
func (vm *versionMetrics) exec(n int) { vm.execs.Add(float64(n)) }

// done records one finished request.
func (vm *versionMetrics) done(start time.Time, queued, computed time.Duration, _ int, rows int, err error) {
	if err != nil {
		vm.failure[failureReason(err)].Inc()
		return
	}
	d := time.Since(start)
	vm.success.Inc()
	vm.count.Add(float64(rows))
	vm.requestUs.Add(float64(d.Microseconds()))
	vm.queueUs.Add(float64(queued.Microseconds()))
	vm.computeUs.Add(float64(computed.Microseconds()))
	vm.requestSeconds.Observe(d.Seconds())
	vm.computeSeconds.Observe(computed.Seconds())
}
