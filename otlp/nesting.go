package otlp

func checkNesting(raw []byte, enc encoding) error { return nil }
