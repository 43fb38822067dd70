// Shows each <time datetime> in the viewer's own time zone; the UTC time stays as its title (on
// hover) and is what the page shows without this script.
"use strict";
(() => {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short",
  });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(when.getTime())) continue;
    if (!el.title) el.title = el.textContent;
    el.textContent = format.format(when);
  }
})();
