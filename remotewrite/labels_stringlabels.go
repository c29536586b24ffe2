//go:build !slicelabels && !dedupelabels

package remotewrite

// builderCopies is true when labels.ScratchBuilder.Labels copies the
// strings added to it, as the default (stringlabels) build does; the
// decoder's strings, which alias a reused buffer, can then be added as
// they are.
const builderCopies = true
