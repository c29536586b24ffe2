package tenancy

import "time"

// Test hooks: the clocks of Verifier and Limits, and the parsers the fuzz
// targets drive directly.

func SetVerifierClock(v *Verifier, now func() time.Time) { v.now = now }

func SetLimitsClock(l *Limits, now func() time.Time) { l.now = now }

func SetLimitsPollInterval(l *Limits, d time.Duration) { l.pollInterval = d }

// ParseJWKS returns the key IDs of the usable keys in data.
func ParseJWKS(data []byte) (kids []string, err error) {
	keys, _, err := parseJWKS(data)
	for _, k := range keys {
		kids = append(kids, k.kid)
	}
	return kids, err
}

// ParseOverrides parses an overrides file and returns the effective limits
// of every tenant it names, over defaults.
func ParseOverrides(data []byte, defaults TenantLimits) (map[ID]TenantLimits, error) {
	o, err := parseOverrides(data)
	if err != nil {
		return nil, err
	}
	return o.effective(defaults)
}

// MarshalOverrides renders overrides in the file format.
func MarshalOverrides(data []byte) ([]byte, error) {
	o, err := parseOverrides(data)
	if err != nil {
		return nil, err
	}
	return o.marshal()
}

func EvictIdle(l *Limits) { l.evictIdle() }

func TenantStates(l *Limits) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.tenants)
}
