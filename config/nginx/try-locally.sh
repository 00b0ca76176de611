#!/bin/sh
# Runs the shipped front end, config/nginx/kinko-frontend.conf, on this machine, to try the
# enrollment page against `kinko api serve`: the enrollment site on https://127.0.0.1:PORT/ and the
# login site on PORT+1, under a throwaway self-signed TLS certificate (a browser warns once) and
# without HSTS. What it makes goes into ./kinko-frontend/ (0700). It runs in the foreground; Ctrl-C
# stops it.
#
#   sh config/nginx/try-locally.sh HOME [--port 8443] [--api-port 8082] [--responder-port 8080]
#                                       [--token-file HOME/api-token]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
usage() {
    echo "usage: sh config/nginx/try-locally.sh HOME [--port N] [--api-port N] [--responder-port N] [--token-file F]" >&2
    exit 2
}
fail() {
    echo "try-locally: $1" >&2
    exit 1
}
[ $# -ge 1 ] || usage
home=$1
shift
port=8443 api_port=8082 responder_port=8080 token_file=$home/api-token
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    --port) port=$2 ;;
    --api-port) api_port=$2 ;;
    --responder-port) responder_port=$2 ;;
    --token-file) token_file=$2 ;;
    *) usage ;;
    esac
    shift 2
done
for number in "$port" "$api_port" "$responder_port"; do
    case $number in '' | 0* | *[!0-9]*) fail "not a port number: $number" ;; esac
    [ "$number" -lt 65535 ] || fail "not a port number below 65535: $number"
done
nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null) || fail "nginx is not installed (apt-get install nginx)"
kinko=$(command -v kinko || echo "$here/../../.venv/bin/kinko")
[ -d "$home" ] || fail "no Kinko home at $home"
[ -r "$token_file" ] || fail "no API token at $token_file (the README's API set-up makes it)"

umask 077
dir=$PWD/kinko-frontend
mkdir -p "$dir/temp"
chmod 700 "$dir"
case $dir in *[!A-Za-z0-9/._-]*) fail "run it from a directory whose path has no spaces or special characters" ;; esac
# A new TLS certificate when there is none, or it ends within a day (an IP address only: a
# browser would remember the configuration's HSTS for localhost, so it is not named).
if [ ! -s "$dir/server.key" ] || ! openssl x509 -in "$dir/server.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=Kinko front end, for trying locally" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.pem" 2>/dev/null || fail "openssl could not make the TLS certificate"
fi
"$kinko" --home "$home" ca chain --out "$dir/client-ca.pem" >/dev/null
rm -f "$dir/api-token.conf"  # made anew under the umask: an older file's mode would be kept
printf 'proxy_set_header Authorization "Bearer %s";\n' "$(cat "$token_file")" >"$dir/api-token.conf"
chmod 600 "$dir/api-token.conf"

# The shipped file with this machine's ports and files: its first site is the enrollment site.
awk -v enroll="listen 127.0.0.1:$port ssl;" -v login="listen 127.0.0.1:$((port + 1)) ssl;" \
    '/listen 443 ssl;/ { sub(/listen 443 ssl;/, ++seen == 1 ? enroll : login) } { print }' \
    "$here/kinko-frontend.conf" |
    sed -e "s|server 127.0.0.1:8082;|server 127.0.0.1:$api_port;|" \
        -e "s|http://127.0.0.1:8081/|http://127.0.0.1:$responder_port/|" \
        -e "s|/etc/kinko/frontend/|$dir/|g" \
        -e "s|/etc/nginx/kinko-api-token.conf|$dir/api-token.conf|" \
        -e "/Strict-Transport-Security/d" >"$dir/kinko-frontend.conf"
# Run as root, the workers stay root: they read this 0700 directory (a trial on this machine only).
user=""
[ "$(id -u)" = 0 ] && user="user root;"
cat >"$dir/nginx.conf" <<CONF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    include $dir/kinko-frontend.conf;
}
CONF
"$nginx" -q -t -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || fail "nginx refused the configuration in $dir"
echo "enrollment site: https://127.0.0.1:$port/enroll/"
echo "login site:      https://127.0.0.1:$((port + 1))/login/"
echo "TLS certificate: ./kinko-frontend/server.pem (self-signed, for this trial only)"
exec "$nginx" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g "daemon off;"
