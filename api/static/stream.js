// The live alert stream: the one place that knows how the console connects to
// /api/v1/alerts/stream. EventSource cannot send headers, and a token must never be in
// a URL: each connection uses a fresh single-use ticket from POST /api/v1/stream/ticket.
// On any error the source is closed (a ticket cannot be reused) and a new one is
// fetched after a pause. A new EventSource sends no Last-Event-ID of its own, so the
// last id seen travels as ?last=: the API replays what was missed (or says reset).
const RETRY_MS = 5000;

export function openAlertStream(api, { onAlert, onOpen, onError, onUnauthorized, onReset }) {
  let source = null;
  let lastId = null;
  let retry = null;
  let closed = false;

  const again = () => { if (!closed) retry = setTimeout(connect, RETRY_MS); };

  async function connect() {
    let ticket;
    try {
      ({ ticket } = await api("/api/v1/stream/ticket", { method: "POST" }));
    } catch (err) {
      onError();
      if (err.status === 401) { onUnauthorized(err); return; }
      again();
      return;
    }
    if (closed) return; // signed out meanwhile
    const query = new URLSearchParams({ ticket });
    if (lastId) query.set("last", lastId);
    const mine = new EventSource(`/api/v1/alerts/stream?${query}`);
    source = mine;
    mine.addEventListener("open", () => onOpen()); // the caller catches up on what it missed
    mine.addEventListener("error", () => {
      onError();
      if (source !== mine) return;
      mine.close();
      source = null;
      again();
    });
    mine.addEventListener("alert", (e) => { lastId = e.lastEventId || lastId; onAlert(JSON.parse(e.data)); });
    mine.addEventListener("reset", () => { lastId = null; onReset(); });
  }

  connect();
  return {
    get live() { return source !== null && source.readyState === EventSource.OPEN; },
    close() {
      closed = true;
      clearTimeout(retry);
      if (source) { source.close(); source = null; }
    },
  };
}
