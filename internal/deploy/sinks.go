package deploy

import (
	"sync"

	"github.com/forge-mlops/forge/internal/serve"
)

// Sink is where a deployment's payload rows are published (see
// serve.PayloadSink); Close stops it.
type Sink interface {
	serve.PayloadSink
	Close()
}

// SinkOpener opens the sink of a deployment's --log-payloads-to URL.
type SinkOpener func(deployment, url string) (Sink, error)

type openSink struct {
	url  string
	sink Sink
}

// sink returns d's payload sink, opening it when its URL is new and
// closing the one it replaces; nil when d publishes nowhere (or no opener
// is set, or it cannot be opened: the dataset logging goes on).
func (c *Controller) sink(d Deployment) serve.PayloadSink {
	cur, ok := c.sinks[d.Name]
	if ok && cur.url == d.PayloadTo && d.PayloadRate > 0 {
		return cur.sink
	}
	c.closeSink(d.Name)
	if d.PayloadTo == "" || d.PayloadRate <= 0 || c.OpenSink == nil {
		return nil
	}
	s, err := c.OpenSink(d.Name, d.PayloadTo)
	if err != nil {
		c.log.Warn("payload publish: cannot open; the rows still go to the dataset", "deployment", d.Name, "to", d.PayloadTo, "err", err)
		return nil
	}
	c.sinks[d.Name] = openSink{d.PayloadTo, s}
	return s
}

func (c *Controller) closeSink(name string) {
	if cur, ok := c.sinks[name]; ok {
		cur.sink.Close()
		delete(c.sinks, name)
	}
}

// closeSinks closes every sink, when the controller stops.
// Each gets its few seconds to hand its queue to the broker, side by side.
func (c *Controller) closeSinks() {
	var wg sync.WaitGroup
	for _, s := range c.sinks {
		wg.Go(s.sink.Close)
	}
	wg.Wait()
	clear(c.sinks)
}
