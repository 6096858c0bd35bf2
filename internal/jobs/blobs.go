package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/forge-mlops/forge"
)

// BlobRefs lists the blobs jobs refer to (blobgc.Referrer): each job's code
// bundle, from its spec, and each attempt's archived log.
func (s *Service) BlobRefs(ctx context.Context, keep func(forge.Digest)) error {
	db := s.st.db
	if err := db.EachString(ctx, "SELECT log_digest FROM job_attempts WHERE log_digest IS NOT NULL", func(d string) { keep(forge.Digest(d)) }); err != nil {
		return err
	}
	var bad error
	err := db.EachString(ctx, `SELECT spec FROM jobs WHERE spec LIKE '%"code"%'`, func(raw string) {
		var spec struct {
			Code string `json:"code"`
		}
		if err := json.Unmarshal([]byte(raw), &spec); err != nil && bad == nil {
			bad = fmt.Errorf("read a job's spec: %w", err)
		}
		if spec.Code != "" {
			keep(forge.Digest(spec.Code))
		}
	})
	if err == nil {
		err = bad // a spec that cannot be read might name a bundle: sweep nothing
	}
	return err
}
