package otlp

import (
	"context"
	"math/rand/v2"
	"testing"
)

// FuzzFastConvert feeds arbitrary bytes to the fast path: it must not
// panic, must append nothing when it gives up, and when it does not give
// up, pdata must read the body and the upstream converter must append the
// same calls. Run: go test -run '^$' -fuzz FuzzFastConvert -fuzztime 60s ./otlp/
func FuzzFastConvert(f *testing.F) {
	quietUpstream(f)
	r := rand.New(rand.NewPCG(7, 7))
	for _, c := range []struct {
		weird bool
		keys  []string
	}{{false, cleanKeys}, {false, genKeys}, {true, genKeys}} {
		g := gen{r: r, weird: c.weird, keys: c.keys}
		for range 10 {
			f.Add(marshal(f, g.metrics()), r.Uint64())
		}
	}
	f.Add([]byte{}, uint64(0))
	f.Add([]byte{0x0a, 0x00}, uint64(1))
	fc := newFastConverter()
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		s := settingsCases(rand.New(rand.NewPCG(seed, 0)))
		if len(body) > 1<<16 {
			return
		}
		var rec recorder
		if _, ok, _ := fc.convert(context.Background(), body, s, &rec); !ok {
			if len(rec.calls) > 0 {
				t.Fatalf("ok=false after %d appends", len(rec.calls))
			}
			return
		}
		differ(t, fc, body, s)
	})
}
