// k6/http: requests measured by periscope (http_reqs, http_req_duration,
// http_req_failed), answered with k6's response shape.
const N = globalThis.__native;

class Response {
  constructor(r) {
    Object.assign(this, r);
  }
  json(selector) {
    const v = JSON.parse(this.body);
    if (!selector) return v;
    return String(selector)
      .split(".")
      .reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), v);
  }
}

function hasHeader(headers, name) {
  return Object.keys(headers).some((k) => k.toLowerCase() === name);
}

export function request(method, url, body, params) {
  params = params || {};
  const headers = Object.assign({}, params.headers || {});
  let b = body;
  if (b !== null && b !== undefined && typeof b === "object") {
    b = Object.keys(b)
      .map((k) => encodeURIComponent(k) + "=" + encodeURIComponent(b[k]))
      .join("&");
    if (!hasHeader(headers, "content-type")) headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  const p = { headers: headers, tags: params.tags || {} };
  if (params.timeout !== undefined) p.timeout = String(params.timeout);
  const r = N.http(String(method).toUpperCase(), String(url), b === null || b === undefined ? null : String(b), JSON.stringify(p));
  return new Response(JSON.parse(r));
}

export function get(url, params) {
  return request("GET", url, null, params);
}
export function head(url, params) {
  return request("HEAD", url, null, params);
}
export function options(url, body, params) {
  return request("OPTIONS", url, body, params);
}
export function post(url, body, params) {
  return request("POST", url, body, params);
}
export function put(url, body, params) {
  return request("PUT", url, body, params);
}
export function patch(url, body, params) {
  return request("PATCH", url, body, params);
}
export function del(url, body, params) {
  return request("DELETE", url, body, params);
}

export default { request, get, head, options, post, put, patch, del };
