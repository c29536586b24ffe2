# luminate-init (docker-compose.yml): run by the Luminate image's busybox
# as `busybox sh init-secrets.sh`. The image has no other tools, so every
# command is a busybox applet or luminate itself.
set -eu

key=/run/luminate/key/hmac.secret
tokens=/run/luminate/tokens
tenant="${LUMINATE_TENANT:-ops}"

# The HMAC secret that signs and verifies tokens: 32 random bytes, hex,
# created once and kept in the volume.
if [ ! -s "$key" ]; then
	busybox od -An -tx1 -N32 /dev/urandom | busybox tr -d ' \n' >"$key.tmp"
	busybox mv "$key.tmp" "$key"
	echo "luminate-init: created $key"
fi
# Luminate runs as 65532.
busybox chown 65532:65532 "$key"
busybox chmod 0400 "$key"

mint() { # mint FILE SCOPES
	luminate token --auth.jwt.hmac-secret-file="$key" --tenant="$tenant" \
		--scopes="$2" --ttl=8760h >"$tokens/$1.tmp"
	# Prometheus (65534) and Grafana (472) read them; only they mount the
	# volume.
	busybox chmod 0444 "$tokens/$1.tmp"
	busybox mv "$tokens/$1.tmp" "$tokens/$1"
	echo "luminate-init: minted $tokens/$1 (tenant $tenant, scopes $2)"
}
mint prometheus.token metrics:write,metrics:read
mint grafana.token metrics:read
# Prometheus scrapes Luminate's own /metrics, which names every tenant:
# that takes the operator scope, which no tenant's token has.
mint scrape.token operator
