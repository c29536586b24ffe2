package native

// DecodeWrite is decodeWrite, for FuzzWrite.
var DecodeWrite = decodeWrite
