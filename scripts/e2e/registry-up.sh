#!/usr/bin/env bash
# Debian's docker-registry (distribution 2.8) on loopback, started by hand:
#   registry-up.sh           plain HTTP registry on $E2E_REGISTRY (127.0.0.1:5000), no auth
#   registry-up.sh --auth    also basic auth on :5001 (htpasswd, bcrypt), the token server
#                            (token-server.mjs) on :5002 and a token-auth registry on :5003
# All of them store into $E2E_DIR/registry/data, so an image pushed to one is served by all.
# Idempotent: what runs is left alone; a port taken by something we did not start is an error.
source "$(dirname "$0")/lib.sh"

auth=0
for arg in "$@"; do case $arg in --auth) auth=1 ;; *) die "usage: registry-up.sh [--auth]" ;; esac; done
take_setup_lock
need docker-registry docker-registry
need htpasswd apache2-utils
need openssl openssl

R="$E2E_DIR/registry"
mkdir -p "$R/data"

# registry_config FILE ADDR [AUTH-YAML]
registry_config() {
  cat >"$1" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $R/data
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: $2
  secret: e2e-not-secret
  headers:
    X-Content-Type-Options: [nosniff]
${3:-}
EOF
}

answers_v2() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$1/v2/") =~ ^(200|401)$ ]]; }

# serve NAME ADDR CONFIG
serve() {
  local name=$1 addr=$2
  if running "$name"; then return 0; fi
  port_in_use "${addr%:*}" "${addr##*:}" && die "$addr is taken by a process these scripts did not start"
  start_daemon "$name" /usr/bin/docker-registry serve "$3"
  wait_until "$name on $addr" 15 answers_v2 "$addr"
}

registry_config "$R/config.yml" "$E2E_REGISTRY"
serve registry "$E2E_REGISTRY" "$R/config.yml"
echo "registry        http://$E2E_REGISTRY (pid $(pid_of registry))"
((auth)) || exit 0

[[ -s $R/htpasswd ]] || htpasswd -Bbn "$E2E_USER" "$E2E_PASS" >"$R/htpasswd"
registry_config "$R/config-basic.yml" "127.0.0.1:$E2E_BASIC_PORT" "auth:
  htpasswd:
    realm: e2e-realm
    path: $R/htpasswd"
serve registry-basic "127.0.0.1:$E2E_BASIC_PORT" "$R/config-basic.yml"

# the token server signs with this key; the registry trusts the self-signed certificate
if [[ ! -s $R/token-cert.pem ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=e2e-token-issuer \
    -keyout "$R/token-key.pem.new" -out "$R/token-cert.pem.new" 2>/dev/null
  mv "$R/token-key.pem.new" "$R/token-key.pem"
  mv "$R/token-cert.pem.new" "$R/token-cert.pem"
fi
if ! running token-server; then
  port_in_use 127.0.0.1 "$E2E_TOKEN_SERVER_PORT" && die "127.0.0.1:$E2E_TOKEN_SERVER_PORT is taken by a process these scripts did not start"
  start_daemon token-server node "$E2E_HERE/token-server.mjs" --listen "127.0.0.1:$E2E_TOKEN_SERVER_PORT" \
    --key "$R/token-key.pem" --cert "$R/token-cert.pem" --issuer e2e-issuer --service e2e-registry \
    --user "$E2E_USER:$E2E_PASS" --anon-pull
  wait_until token-server 15 curl -sf "http://127.0.0.1:$E2E_TOKEN_SERVER_PORT/token?service=e2e-registry"
fi
registry_config "$R/config-token.yml" "127.0.0.1:$E2E_TOKEN_REGISTRY_PORT" "auth:
  token:
    realm: http://127.0.0.1:$E2E_TOKEN_SERVER_PORT/token
    service: e2e-registry
    issuer: e2e-issuer
    rootcertbundle: $R/token-cert.pem"
serve registry-token "127.0.0.1:$E2E_TOKEN_REGISTRY_PORT" "$R/config-token.yml"

echo "basic auth      http://127.0.0.1:$E2E_BASIC_PORT as $E2E_USER:$E2E_PASS (pid $(pid_of registry-basic))"
echo "token server    http://127.0.0.1:$E2E_TOKEN_SERVER_PORT/token (pid $(pid_of token-server))"
echo "token registry  http://127.0.0.1:$E2E_TOKEN_REGISTRY_PORT, anonymous pull, push as $E2E_USER (pid $(pid_of registry-token))"
