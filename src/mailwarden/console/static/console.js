// mailwarden console: the little behaviour htmx does not cover. No inline handlers anywhere (the CSP
// forbids them): this file binds by class name.
"use strict";
// All times in the user's time zone: without a choice yet (no mw_tz cookie), take the browser's zone. The
// sign-in page shows no time, so the cookie is there before any page that does; a page reached without it
// (cookies cleared) is shown again once, in the zone. The server renders every time; this only tells it the zone.
(function () {
  if (/(^|;\s*)mw_tz=/.test(document.cookie)) { return; }
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) { return; }
  var secure = location.protocol === "https:" ? "; secure" : "";
  document.cookie = "mw_tz=" + zone + "; path=/; max-age=31536000; samesite=strict" + secure;
  if (location.pathname !== "/login" && zone !== "UTC" && /(^|;\s*)mw_tz=/.test(document.cookie)
      && !sessionStorage.getItem("mw_tz_reloaded")) {
    sessionStorage.setItem("mw_tz_reloaded", "1");
    location.reload();
  }
})();
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("button.nojs").forEach(function (button) { button.hidden = true; });
});
document.addEventListener("change", function (event) {
  var box = event.target;
  if (box.matches && box.matches("input.select-all")) {
    document.querySelectorAll("input[name='" + box.dataset.for + "']").forEach(function (item) {
      item.checked = box.checked;
    });
  }
});
