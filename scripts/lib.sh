# Shared helpers for the bench and test scripts: free ports, nginx in a temp dir.
# shellcheck shell=bash

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 from Debian's packages" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
}

# nginx_static DIR PORT [H2PORT]: serve DIR/www on 127.0.0.1:PORT (and over
# HTTP/2 with prior knowledge, h2c, on H2PORT); POSTs get the file too.
# Files under stream/ are sent as text/event-stream, others as application/json.
nginx_static() {
  local dir=$1 port=$2 h2=""
  [ -n "${3:-}" ] && h2="listen 127.0.0.1:$3 http2;"
  mkdir -p "$dir/tmp"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon on;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    $h2
    root $dir/www;
    error_page 405 =200 \$uri;
    location /stream/ { default_type text/event-stream; }
    location / { default_type application/json; }
  }
}
CONF
  nginx -c "$dir/nginx.conf"
}

nginx_stop() {
  local dir=$1
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
}

# wait_http URL: wait up to 5 s for URL to answer.
wait_http() {
  for _ in $(seq 50); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "nothing answers at $1" >&2
  return 1
}

# capture_bodies BIN DIR: write the mock's whole and streamed chat answers
# (64 tokens) under DIR/www/v1/chat/completions and DIR/www/stream/v1/chat/completions.
capture_bodies() {
  local bin=$1 dir=$2 port
  port=$(free_port)
  "$bin" mock --listen "127.0.0.1:$port" --ttft 0ms --itl 0ms 2>/dev/null &
  local pid=$!
  wait_http "http://127.0.0.1:$port/health"
  mkdir -p "$dir/www/v1/chat" "$dir/www/stream/v1/chat"
  curl -s "http://127.0.0.1:$port/v1/chat/completions" -d "$REQ_WHOLE" > "$dir/www/v1/chat/completions"
  curl -s "http://127.0.0.1:$port/v1/chat/completions" -d "$REQ_STREAM" > "$dir/www/stream/v1/chat/completions"
  kill $pid
}

REQ_WHOLE='{"model":"m","messages":[{"role":"user","content":"Explain in a few sentences how a load balancer spreads requests across a pool of servers."}],"max_tokens":64,"stream":false}'
REQ_STREAM='{"model":"m","messages":[{"role":"user","content":"Explain in a few sentences how a load balancer spreads requests across a pool of servers."}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}'
