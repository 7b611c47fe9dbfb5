// Errors a person understands: the API's error envelope as a class, and every piece of advice the page
// gives about a failure, written once here (cards, the library, the asset view and sign-in all use it).
import { formatBytes } from "./format.js";

export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = (error && error.code) || "http_error";
    this.details = (error && error.details) || {};
  }
}

/** The token stopped working (or the person signed out): the page is back at sign-in. */
export class SessionEndedError extends Error {}

/** The request never got an answer: no network, or the service is down. Worth retrying by itself. */
export class ConnectionLostError extends Error {
  constructor(cause) {
    super("The connection to the service was lost.");
    this.cause = cause;
  }
}

/** Storage or the service failed in a way that a later attempt may not: retrying is the person's call. */
export const isTransient = (error) =>
  error instanceof ConnectionLostError || (error instanceof ApiError && error.status >= 500) ||
  // XHRs to storage that got no answer (Uppy reports them without a status).
  (!(error instanceof ApiError) && !(error instanceof SessionEndedError) && !(error && error.settled) &&
    /network|failed to fetch|unknown error|load failed|timed? ?out/i.test(String(error && error.message)));

// What people call the files a renamed upload turns out to be.
const KIND_NAMES = Object.freeze({
  "application/pdf": "a PDF", "application/zip": "a ZIP archive", "text/html": "a web page",
  "application/x-msdownload": "a Windows program", "text/plain": "a text file",
});

export function describeKind(mimeType) {
  const kind = (mimeType || "").split("/")[0];
  return { video: "a video", audio: "an audio file", image: "an image" }[kind] || `a ${mimeType || "media file"}`;
}

// Signatures of files that are certainly not media, from their first bytes: refused before anything is
// sent. Anything else goes to the server, whose own check (and ffprobe) decide.
const NOT_MEDIA = Object.freeze([
  ["application/pdf", [0x25, 0x50, 0x44, 0x46, 0x2d]], // %PDF-
  ["application/zip", [0x50, 0x4b, 0x03, 0x04]],
  ["application/x-msdownload", [0x4d, 0x5a]], // MZ
]);

/** Why a file declared as media (`declaredType`) is not, from its first bytes; null when it may be. */
export function notMediaReason(name, declaredType, head) {
  // A declared non-media type is the server's to refuse (415, with the type named).
  if (!/^(video|audio|image)\//.test(declaredType)) return null;
  let found = NOT_MEDIA.find(([, magic]) => magic.every((byte, i) => head[i] === byte));
  if (!found) {
    const text = new TextDecoder().decode(head).trimStart().toLowerCase();
    if (text.startsWith("<!doctype html") || text.startsWith("<html")) found = ["text/html"];
  }
  if (!found) return null;
  return `“${name}” is ${KIND_NAMES[found[0]]}, not ${describeKind(declaredType)}: upload a video, audio or image file.`;
}

export function describeError(error, fileName) {
  const quoted = fileName ? `“${fileName}”` : "This file";
  if (error instanceof ConnectionLostError) return "Connection lost: the service could not be reached.";
  if (!(error instanceof ApiError)) return error.message || String(error);
  const d = error.details;
  switch (error.code) {
    case "mime_type_not_allowed":
      return `${quoted} can't be uploaded: only video, audio and image files are accepted ` +
        `(this file is ${d.mimeType && d.mimeType !== "application/octet-stream" ? d.mimeType : "of an unknown type"}).`;
    case "quota_exceeded":
      return `Not enough storage for ${quoted}: it needs ${formatBytes(d.requested)}, but only ` +
        `${formatBytes(d.available)} of your ${d.plan} plan's ${formatBytes(d.limit)} is free ` +
        `(${formatBytes(d.stored)} stored, ${formatBytes(d.reserved)} reserved by unfinished uploads` +
        `${d.reserved ? ", listed under “Unfinished uploads”, where you can release them" : ""}).`;
    case "file_too_large":
      return `${quoted} is ${formatBytes(d.fileSize)}; the largest file you can upload is ${formatBytes(d.maxFileSize)}.`;
    case "integrity_check_failed":
      if (d.check === "type") {
        const kind = KIND_NAMES[d.found] || (d.found ? `a ${d.found} file` : "not a file we recognise");
        return `${quoted} is ${kind}, not ${describeKind(d.declared)}: upload a video, audio or image file.`;
      }
      if (d.check === "size") {
        return `${quoted} arrived incomplete (${formatBytes(d.found)} of ${formatBytes(d.declared)}): upload it again.`;
      }
      return `${quoted} arrived changed on the way (${error.message}): upload it again.`;
    case "conflict":
      // An upload left idle past its deadline (a day by default) was swept; its parts are gone.
      if (/expired/.test(error.message)) return `${quoted} waited too long and expired; upload it again.`;
      return error.message;
    default:
      return error.message;
  }
}

export const SESSION_EXPIRED = "Your session has expired or your token is no longer valid. Please sign in again.";
