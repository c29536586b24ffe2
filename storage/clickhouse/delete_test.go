package clickhouse

import (
	"testing"

	"github.com/luminate-io/luminate/storage/storagetest"
)

// TestDeleteConformance runs the deletion cases on ClickHouse.
func TestDeleteConformance(t *testing.T) { storagetest.RunDelete(t, backend()) }
