package storage

import "github.com/luminate-io/luminate/tenancy"

// Tenant is the verified tenant of one request and its view of the store.
// The router builds it (authentication, scope, ForTenant) and hands it to
// the protocol handlers, which never resolve a tenant themselves.
type Tenant struct {
	Principal tenancy.Principal
	Store     TenantStore
}

// ID is the tenant's ID.
func (t Tenant) ID() tenancy.ID { return t.Principal.Tenant }
