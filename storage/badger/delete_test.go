package badger_test

import (
	"testing"

	"github.com/luminate-io/luminate/storage/storagetest"
)

// TestDeleteConformance runs the deletion cases on Badger.
func TestDeleteConformance(t *testing.T) {
	storagetest.RunDelete(t, conformanceBackend())
}
