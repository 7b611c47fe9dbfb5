// The /api routes with the signed-in person's token; the JSON envelope unwrapped, errors as ApiError.
import { ApiError, ConnectionLostError, SESSION_EXPIRED, SessionEndedError } from "./errors.js";

/** `session` gives the token and is told when the service stops accepting it. */
export function createApi(session) {
  return async function api(path, { method = "GET", body, signal } = {}) {
    const token = session.token();
    if (!token) throw new SessionEndedError("signed out");
    const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (error) {
      if (signal && signal.aborted) throw error;
      throw new ConnectionLostError(error); // never a bare "Failed to fetch"
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (response.status === 401) {
      session.expire(SESSION_EXPIRED);
      throw new SessionEndedError("unauthorized");
    }
    if (!response.ok || !payload || payload.success === false) throw new ApiError(response.status, payload && payload.error);
    return payload.data;
  };
}
