/* Threadline: the little JavaScript the UI needs. Everything works without it, except live updates. */
(function () {
  "use strict";

  var DISMISS_AFTER_MS = 6000;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // htmx requests carry the CSRF token as a header (the token is in <meta name="csrf-token">).
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRFToken"] = token;
    }
  });

  function removeMessage(message) {
    message.classList.add("is-leaving");
    window.setTimeout(function () {
      if (message.parentNode) {
        message.parentNode.removeChild(message);
      }
    }, 400);
  }

  // Success and info messages fade out after a while; warnings and errors stay until dismissed.
  function scheduleDismissal(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    var messages = Array.prototype.slice.call(root.querySelectorAll(".message"));
    if (root.matches && root.matches(".message")) {
      messages.push(root);
    }
    messages.forEach(function (message) {
      if (message.dataset.scheduled) {
        return;
      }
      message.dataset.scheduled = "1";
      if (message.classList.contains("message-success") || message.classList.contains("message-info")) {
        window.setTimeout(function () {
          // Leave a message alone while the user is interacting with it.
          if (message.contains(document.activeElement) || message.matches(":hover")) {
            window.setTimeout(function () { removeMessage(message); }, DISMISS_AFTER_MS);
            return;
          }
          removeMessage(message);
        }, DISMISS_AFTER_MS);
      }
    });
  }

  function closeNotifications() {
    var area = document.getElementById("notification-area");
    if (area && area.firstChild) {
      area.innerHTML = "";
      var bell = document.getElementById("notification-bell");
      if (bell) {
        bell.focus();
      }
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var dismiss = target.closest(".message-dismiss");
    if (dismiss) {
      removeMessage(dismiss.closest(".message"));
      return;
    }
    if (target.closest("[data-close-notifications]")) {
      closeNotifications();
      return;
    }
    // A click outside the open notification dropdown closes it.
    var area = document.getElementById("notification-area");
    if (area && area.firstChild && !target.closest(".notifications")) {
      area.innerHTML = "";
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      closeNotifications();
    }
  });

  // When the notification dropdown is (re)loaded, move focus into it so keyboard users land on it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "notification-area") {
      var panel = target.querySelector(".notification-panel");
      if (panel) {
        panel.focus();
      }
    }
  });

  document.addEventListener("htmx:load", function (event) {
    scheduleDismissal(event.detail && event.detail.elt);
  });
  document.addEventListener("DOMContentLoaded", function () {
    scheduleDismissal(document);
  });

  // Reply form: when the chosen channel is one the contact opted out of, disable Send and say why.
  function syncReplyBlocked() {
    var data = document.getElementById("reply-blocked-data");
    var picker = document.getElementById("id_account");
    var button = document.getElementById("reply-send");
    var reason = document.getElementById("reply-blocked-reason");
    if (!data || !picker || !button || !reason) {
      return;
    }
    var blocked = JSON.parse(data.textContent || "{}");
    var why = blocked[picker.value] || "";
    button.disabled = why !== "";
    reason.textContent = why;
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "id_account") {
      syncReplyBlocked();
    }
  });
  document.addEventListener("DOMContentLoaded", syncReplyBlocked);
})();
