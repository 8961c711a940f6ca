/* Calls to the studio's session JSON API (/studio/api): same-origin, CSRF header, errors as ApiError. */

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || 'HTTP ' + status);
    this.status = status;
    this.problems = (body && body.problems) || [];
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const holder = document.querySelector('[data-csrf]');
  return (meta && meta.content) || (holder && holder.getAttribute('data-csrf')) || '';
}

/** Send a request; resolve to the parsed JSON or text, reject with ApiError when the answer is not 2xx. */
export async function call(url, { method = 'GET', xml, json, accept = 'application/json' } = {}) {
  const headers = { Accept: accept };
  let body;
  if (xml !== undefined) {
    headers['Content-Type'] = 'application/xml';
    body = xml;
  } else if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  if (method !== 'GET') {
    headers['X-CSRFToken'] = csrfToken();
  }
  const response = await fetch(url, { method, headers, body, credentials: 'same-origin' });
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    throw new ApiError(response.status, typeof data === 'object' ? data : { message: data && data.slice(0, 300) });
  }
  return data;
}
