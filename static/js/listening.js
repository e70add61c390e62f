/* Listening pages: show the source fields of the chosen kind, grey out activity fields without a recipient, and
   copy a webhook secret. The pages work without it (every field is shown, nothing is hidden). */
(function () {
  "use strict";

  function syncSourceKind(form) {
    var kind = form.querySelector('[name="kind"]');
    if (!kind) {
      return;
    }
    Array.prototype.forEach.call(form.querySelectorAll(".source-kind"), function (part) {
      var kinds = (part.getAttribute("data-kinds") || "").split(" ");
      part.hidden = kinds.indexOf(kind.value) === -1;
    });
  }

  function syncActivityFields(form) {
    var who = form.querySelector('[name="activity_for"]');
    var group = form.querySelector("[data-activity-fields]");
    if (!who || !group || who.disabled) {
      return;
    }
    Array.prototype.forEach.call(group.querySelectorAll("input, select"), function (field) {
      if (field !== who) {
        field.disabled = who.value === "";
      }
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-source-form]"), syncSourceKind);
    var ruleForm = document.getElementById("rule-form");
    if (ruleForm) {
      syncActivityFields(ruleForm);
      // Disabled fields are not submitted: re-enable them just before saving so their values are kept.
      ruleForm.addEventListener("submit", function () {
        var group = ruleForm.querySelector("[data-activity-fields]");
        if (group && !ruleForm.querySelector('[name="activity_for"]').disabled) {
          Array.prototype.forEach.call(group.querySelectorAll("input, select"), function (f) { f.disabled = false; });
        }
      });
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    if (target.getAttribute("name") === "kind" && target.closest("[data-source-form]")) {
      syncSourceKind(target.closest("[data-source-form]"));
    }
    if (target.getAttribute("name") === "activity_for" && target.closest("#rule-form")) {
      syncActivityFields(target.closest("#rule-form"));
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button) {
      return;
    }
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) {
      return;
    }
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
