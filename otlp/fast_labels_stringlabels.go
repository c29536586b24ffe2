//go:build !slicelabels && !dedupelabels

package otlp

// fastBuilderCopies is true when labels.ScratchBuilder copies the strings
// added to it (the default, stringlabels, build): the fast converter then
// adds strings that alias the request body and writes each series' labels
// over one reused buffer.
const fastBuilderCopies = true
