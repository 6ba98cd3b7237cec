// tickwork console: progressive enhancement only; every page works without it.
"use strict";

// The viewer's zone, sent once with the sign-in form so pages show times in it.
for (const input of document.querySelectorAll("[data-viewer-zone]")) {
  try { input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* UTC */ }
}

function csrfToken() {
  const field = document.querySelector("input[name=csrf]");
  return field ? field.value : "";
}

// A rule being edited: its next occurrences and the API's messages, while typing.
const ruleForm = document.querySelector("form[data-preview]");
if (ruleForm) {
  const target = document.getElementById("preview");
  const words = document.getElementById("preview-words");
  let timer = null;
  let sequence = 0;
  const showKind = () => {
    const kind = (ruleForm.querySelector("input[name=kind]:checked") || {}).value;
    for (const box of ruleForm.querySelectorAll("[data-kind]")) {
      box.hidden = box.dataset.kind !== kind;
    }
  };
  const refresh = async () => {
    const mine = ++sequence;
    const body = new URLSearchParams(new FormData(ruleForm));
    let data;
    try {
      const response = await fetch(ruleForm.dataset.preview, {
        method: "POST", body, headers: {"X-CSRF-Token": csrfToken()}, credentials: "same-origin",
      });
      data = await response.json();
    } catch (e) {
      return;
    }
    if (mine !== sequence) return;  // a later keystroke's answer wins
    for (const slot of ruleForm.querySelectorAll(".error[data-for]")) {
      const messages = (data.errors || {})[slot.dataset.for] || [];
      slot.textContent = messages.join(" ");
      const field = ruleForm.querySelector(`[name="${slot.dataset.for}"]`);
      if (field) field.setAttribute("aria-invalid", messages.length ? "true" : "false");
    }
    words.textContent = data.words || "";
    target.replaceChildren();
    if (!data.ok) {
      const item = document.createElement("li");
      item.textContent = data.message || "Not valid yet.";
      item.className = "problem";
      target.append(item);
      return;
    }
    if (!data.occurrences.length) {
      const item = document.createElement("li");
      item.textContent = "No occurrence after now.";
      target.append(item);
    }
    for (const occurrence of data.occurrences) {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = occurrence.instant;
      time.textContent = occurrence.text;
      item.append(time);
      for (const note of occurrence.notes) {
        const small = document.createElement("span");
        small.className = "hint";
        small.textContent = " — " + note;
        item.append(small);
      }
      target.append(item);
    }
  };
  ruleForm.addEventListener("input", () => {
    showKind();
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
  ruleForm.addEventListener("change", showKind);
  showKind();
  refresh();
}

// A run that has not finished: its status, timeline and output follow by themselves.
const live = document.querySelector("[data-live]");
if (live) {
  const poll = async () => {
    if (live.querySelector("[data-finished='1']")) return;
    try {
      const response = await fetch(live.dataset.live, {credentials: "same-origin"});
      if (response.ok) live.innerHTML = await response.text();
    } catch (e) { /* try again later */ }
    setTimeout(poll, 1500);
  };
  setTimeout(poll, 1500);
}
