// edgechat's Service Worker: shows push notifications while no tab of the app is connected, and
// takes them down when the conversation is read on another device. Payloads: docs/protocol.md,
// "Push notifications" (protocol/push.ts). Plain JavaScript, served as is (no build step).
/* eslint-env serviceworker */

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** One notification per conversation: a later push replaces it (same tag), a clear closes it. */
function tagFor(channelId) {
  return `edgechat:${channelId}`;
}

function notificationFor(p) {
  const dm = p.channel_type === "dm";
  const text = typeof p.preview === "string" && p.preview !== "" ? p.preview : p.count > 1 ? `${p.count} new messages` : "New message";
  return {
    title: dm ? p.sender_name || "New message" : p.channel_name || "edgechat",
    options: {
      body: dm || !p.sender_name ? text : `${p.sender_name}: ${text}`,
      tag: tagFor(p.channel_id),
      // The merged update replaces the first notification quietly: one alert per window.
      renotify: false,
      icon: "/favicon.svg",
      timestamp: typeof p.sent_at === "number" && p.sent_at > 0 ? p.sent_at : Date.now(),
      data: { channel_id: p.channel_id, seq: p.seq },
    },
  };
}

async function onPush(p) {
  if (!p || p.v !== 1 || typeof p.channel_id !== "string") {
    // A push must show something (userVisibleOnly); say little about what we cannot read.
    return self.registration.showNotification("edgechat", { body: "New activity", tag: "edgechat" });
  }
  if (p.type === "clear") {
    for (const n of await self.registration.getNotifications({ tag: tagFor(p.channel_id) })) n.close();
    return;
  }
  const { title, options } = notificationFor(p);
  return self.registration.showNotification(title, options);
}

self.addEventListener("push", (event) => {
  let payload;
  try {
    payload = event.data ? event.data.json() : undefined;
  } catch {
    payload = undefined;
  }
  event.waitUntil(onPush(payload));
});

/** A click opens the conversation: in an open tab of the app if there is one, else a new one. */
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const channelId = event.notification.data && event.notification.data.channel_id;
  const url = new URL(channelId ? `/#c/${channelId}` : "/", self.location.origin).href;
  event.waitUntil((async () => {
    const tabs = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const tab = tabs.find((c) => new URL(c.url).origin === self.location.origin);
    if (tab) {
      await tab.focus();
      if ("navigate" in tab) await tab.navigate(url).catch(() => tab.postMessage({ type: "open", channel_id: channelId }));
      return;
    }
    await self.clients.openWindow(url);
  })());
});
