// Who is signed in: the token, kept in sessionStorage so it ends with the tab, and the sign-in form.
import { $ } from "./dom.js";

const TOKEN_KEY = "mediaingest.token";

/** The token and what happens when it ends; `onEnd(message)` shows the sign-in form again. */
export function createSession(storage, onEnd) {
  let token = storage.getItem(TOKEN_KEY);
  return {
    token: () => token,
    start(value) {
      token = value;
      storage.setItem(TOKEN_KEY, value);
    },
    expire(message) {
      token = null;
      storage.removeItem(TOKEN_KEY);
      onEnd(message);
    },
  };
}

/** Checks a token against the service; resolves with null when it works, else what to tell the person. */
export async function checkToken(candidate) {
  if (!candidate) return "Enter your API token.";
  const response = await fetch("/api/assets?pageSize=1", { headers: { Authorization: `Bearer ${candidate}` } })
    .catch(() => null);
  if (!response) return "The service could not be reached. Check your connection and try again.";
  if (response.status === 401) return "That token was not accepted: it is invalid, revoked or expired.";
  if (!response.ok) return `The service answered ${response.status}; please try again later.`;
  return null;
}

export function wireSignIn(onToken) {
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("#token-input");
    const candidate = input.value.trim();
    const problem = await checkToken(candidate);
    $("#sign-in-error").textContent = problem || "";
    if (problem) {
      input.select();
      input.focus();
      return;
    }
    onToken(candidate);
  });
}
