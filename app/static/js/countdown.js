// Deadline countdowns: every minute, rewrite the time left of each [data-due] element ("in 2 d 3 h",
// "5 h overdue") from its due time. The server renders the same text, so the page reads the same without it;
// the words come from this script tag's data-* attributes, in the page language.
(function () {
  "use strict";

  var script = document.currentScript;
  var elements = document.querySelectorAll("[data-due]");
  if (!script || elements.length === 0) {
    return;
  }

  function say(name, placeholder, value) {
    return script.getAttribute("data-" + name).replace(placeholder, String(value));
  }

  // The two largest units in whole minutes, as app/web/__init__.py's time_span says them.
  function span(milliseconds) {
    var total = Math.floor(Math.abs(milliseconds) / 60000);
    var days = Math.floor(total / 1440);
    var hours = Math.floor((total % 1440) / 60);
    var minutes = total % 60;
    var parts;
    if (days) {
      parts = [say("days", "{n}", days)].concat(hours ? [say("hours", "{n}", hours)] : []);
    } else if (hours) {
      parts = [say("hours", "{n}", hours)].concat(minutes ? [say("minutes", "{n}", minutes)] : []);
    } else {
      parts = [say("minutes", "{n}", minutes)];
    }
    return parts.join(" ");
  }

  function update() {
    var now = Date.now();
    elements.forEach(function (element) {
      var left = Date.parse(element.getAttribute("data-due")) - now;
      if (isNaN(left)) {
        return;
      }
      element.textContent = say(left >= 0 ? "in" : "overdue", "{time}", span(left));
      element.classList.toggle("overdue", left < 0);
    });
  }

  update();
  window.setInterval(update, 60000);
}());
