package otlp

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"google.golang.org/protobuf/encoding/protowire"
)

func pbMsg(num protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
}

func repeat(n int, b []byte) []byte { return bytes.Repeat(b, n) }

// inMetric puts the encoding of one Metric's fields in a request.
func inMetric(metric []byte) []byte { return pbMsg(1, pbMsg(2, pbMsg(2, metric))) }

// allocated is what decoding body with pdata allocates in all (runtime
// TotalAlloc: a bound on the heap it may hold at any time).
func allocated(t *testing.T, body []byte, enc encoding) int64 {
	t.Helper()
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	md, err := decode(body, enc)
	runtime.ReadMemStats(&b)
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(md)
	return int64(b.TotalAlloc - a.TotalAlloc)
}

// TestDecodedCostCoversPdata checks that decodedCost (and its JSON
// twin) is at least what pdata allocates to decode a body, for bodies of
// one kind of tiny element each (where pdata allocates the most per byte)
// and for realistic exports, in protobuf and JSON, and that the data
// points it counts are pdata's.
func TestDecodedCostCoversPdata(t *testing.T) {
	const n = 100_000
	empty := pbMsg(1, nil)
	fixed := make([]byte, 8*n)
	cases := []struct {
		name string
		body []byte
	}{
		{"empty number points", inMetric(pbMsg(5, repeat(n, empty)))},
		{"empty sum points", inMetric(pbMsg(7, repeat(n, empty)))},
		{"empty histogram points", inMetric(pbMsg(9, repeat(n, empty)))},
		{"empty exponential points", inMetric(pbMsg(10, repeat(n, empty)))},
		{"empty summary points", inMetric(pbMsg(11, repeat(n, empty)))},
		{"empty metrics", pbMsg(1, pbMsg(2, repeat(n, pbMsg(2, nil))))},
		{"empty scope metrics", pbMsg(1, repeat(n, pbMsg(2, nil)))},
		{"empty resource metrics", repeat(n, pbMsg(1, nil))},
		{"empty entity refs", pbMsg(1, pbMsg(1, repeat(n, pbMsg(3, nil))))},
		{"entity ref keys", pbMsg(1, pbMsg(1, pbMsg(3, repeat(n, pbMsg(3, nil)))))},
		{"point attributes", inMetric(pbMsg(5, pbMsg(1, repeat(n, pbMsg(7, nil)))))},
		{"point attributes of empty strings", inMetric(pbMsg(5, pbMsg(1, repeat(n, pbMsg(7, pbMsg(2, pbMsg(1, nil)))))))},
		{"resource attributes", pbMsg(1, pbMsg(1, repeat(n, pbMsg(1, nil))))},
		{"scope attributes", pbMsg(1, pbMsg(2, pbMsg(1, repeat(n, pbMsg(3, nil)))))},
		{"metric metadata", inMetric(repeat(n, pbMsg(12, nil)))},
		{"exemplars", inMetric(pbMsg(5, pbMsg(1, repeat(n, pbMsg(5, nil)))))},
		{"histogram exemplars", inMetric(pbMsg(9, pbMsg(1, repeat(n, pbMsg(8, nil)))))},
		{"exemplar attributes", inMetric(pbMsg(5, pbMsg(1, pbMsg(5, repeat(n, pbMsg(7, nil))))))},
		{"array values", inMetric(pbMsg(5, pbMsg(1, pbMsg(7, pbMsg(2, pbMsg(5, repeat(n, pbMsg(1, nil))))))))},
		{"key-value list values", inMetric(pbMsg(5, pbMsg(1, pbMsg(7, pbMsg(2, pbMsg(6, repeat(n, pbMsg(1, nil))))))))},
		{"quantiles", inMetric(pbMsg(11, pbMsg(1, repeat(n, pbMsg(6, nil)))))},
		{"packed bucket counts", inMetric(pbMsg(9, pbMsg(1, pbMsg(6, fixed))))},
		{"packed bounds", inMetric(pbMsg(9, pbMsg(1, pbMsg(7, fixed))))},
		{"unpacked bucket counts", inMetric(pbMsg(9, pbMsg(1, repeat(n, append([]byte{0x31}, make([]byte, 8)...)))))},
		{"packed exponential buckets", inMetric(pbMsg(10, pbMsg(1, pbMsg(8, pbMsg(2, make([]byte, n))))))},
		{"unpacked exponential buckets", inMetric(pbMsg(10, pbMsg(1, pbMsg(8, repeat(n, []byte{0x10, 0})))))},
		{"exponential bucket spans", inMetric(pbMsg(10, pbMsg(1, repeat(n, pbMsg(9, nil)))))},
		{"a long name", inMetric(pbMsg(1, make([]byte, 8*n)))},
		{"unknown fields", pbMsg(1, repeat(n, pbMsg(99, nil)))},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		g := &gen{r: r, weird: i%2 == 0, keys: genKeys}
		cases = append(cases, struct {
			name string
			body []byte
		}{"random export", marshal(t, g.metrics())})
	}
	bench, _ := benchBody(t)
	cases = append(cases, struct {
		name string
		body []byte
	}{"bench export", bench})
	for _, c := range cases {
		md, err := decode(c.body, encProtobuf)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		js, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []encoding{encProtobuf, encJSON} {
			body, name := c.body, c.name
			points, cost := decodedCost(body)
			if enc == encJSON {
				body, name = js, name+" (JSON)"
				points, cost = decodedCostJSON(body)
			}
			took := allocated(t, body, enc)
			t.Logf("%-40s %9d bytes: pdata allocates %10d (%5.1f a byte), counted %10d (%4.1fx)", name, len(body), took, float64(took)/float64(len(body)), cost, float64(cost)/float64(took))
			if cost < took {
				t.Errorf("%s: counted %d bytes, pdata allocates %d", name, cost, took)
			}
			if want := int64(md.DataPointCount()); points != want {
				t.Errorf("%s: counted %d data points, pdata has %d", name, points, want)
			}
			if !strings.HasPrefix(name, "random") && !strings.HasPrefix(name, "bench") {
				continue
			}
			// Realistic exports are not refused for what they are not.
			if cost > 8*took+int64(len(body))*4 {
				t.Errorf("%s: counted %d bytes, 8 times more than pdata's %d", name, cost, took)
			}
		}
	}
}
