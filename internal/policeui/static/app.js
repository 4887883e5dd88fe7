// TES police client: small progressive enhancements. Every page works
// without this script (forms post, the browser checks the fields itself);
// it adds the field messages in the page, the "use my location" button,
// the live status panel and history, and "retry now" when the browser's
// network comes back. It never builds HTML from data: only textContent.
(function () {
  'use strict';

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute('content') : '';

  // --- Field validation with the same messages the server gives ---------

  function message(input) {
    var v = input.validity;
    var d = input.dataset;
    if (v.valueMissing) return d.msgMissing || 'This field is required.';
    if (v.badInput || v.stepMismatch || v.typeMismatch) return d.msgBad || 'This value is not valid.';
    if (v.patternMismatch) return d.msgPattern || 'This value is not valid.';
    if (v.tooLong) return d.msgLong || 'This value is too long.';
    if (v.rangeUnderflow || v.rangeOverflow) return d.msgRange || 'This value is out of range.';
    return input.validationMessage;
  }

  function showError(input, msg) {
    var box = document.getElementById(input.id + '-error');
    var field = input.closest('.field');
    if (box) {
      box.textContent = msg;
      box.hidden = !msg;
    }
    if (msg) {
      input.setAttribute('aria-invalid', 'true');
      if (field) field.classList.add('field-invalid');
    } else {
      input.removeAttribute('aria-invalid');
      if (field) field.classList.remove('field-invalid');
    }
  }

  var form = document.querySelector('form[data-validate]');
  if (form) {
    // The script shows its own messages next to each field, so the
    // browser's bubbles are turned off; without the script they remain.
    form.noValidate = true;
    var inputs = form.querySelectorAll('input[id]:not([type="hidden"])');
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener('input', function () {
        if (input.validity.valid) showError(input, '');
      });
      input.addEventListener('blur', function () {
        if (input.value !== '' && !input.validity.valid) showError(input, message(input));
      });
    });
    form.addEventListener('submit', function (ev) {
      var first = null;
      Array.prototype.forEach.call(inputs, function (input) {
        if (input.validity.valid) {
          showError(input, '');
        } else {
          showError(input, message(input));
          if (!first) first = input;
        }
      });
      if (first) {
        ev.preventDefault();
        first.focus();
      }
    });

    // The browser's offset from UTC, so the server reads the observed time
    // as the officer meant it; and "now" in the browser's own clock.
    var tz = form.querySelector('[data-tz]');
    if (tz) tz.value = String(-new Date().getTimezoneOffset());
    var observed = document.getElementById('observed_at');
    if (observed && observed.hasAttribute('data-now')) {
      observed.value = localInput(new Date());
    }
    if (observed) observed.max = localInput(new Date(Date.now() + 5 * 60 * 1000));
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function localInput(d) {
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) +
      'T' + pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  // --- Use my location ----------------------------------------------------

  var geoButton = document.getElementById('geo-button');
  var geoStatus = document.getElementById('geo-status');
  var locationInput = document.getElementById('location');
  if (geoButton && geoStatus && locationInput && navigator.geolocation) {
    geoButton.hidden = false;
    geoButton.addEventListener('click', function () {
      geoStatus.textContent = 'Finding your position…';
      geoButton.disabled = true;
      navigator.geolocation.getCurrentPosition(function (pos) {
        locationInput.value = pos.coords.latitude.toFixed(5) + ',' + pos.coords.longitude.toFixed(5);
        geoStatus.textContent = 'Position filled in (accurate to about ' + Math.round(pos.coords.accuracy) + ' m).';
        geoButton.disabled = false;
        locationInput.focus();
      }, function (err) {
        var msg = 'Your position is not available; type the location instead.';
        if (!window.isSecureContext) {
          msg = 'The browser gives the position only over HTTPS or on this computer (localhost); type the location instead.';
        } else if (err && err.code === 1) {
          msg = 'Permission to use your position was refused; type the location instead.';
        }
        geoStatus.textContent = msg;
        geoButton.disabled = false;
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
  }

  // --- Live status panel and history --------------------------------------

  function node(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function cell(label, children, cls) {
    var td = node('td', cls);
    td.setAttribute('data-label', label);
    children.forEach(function (c) {
      td.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return td;
  }

  function renderRow(r) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-report', r.report_id);
    tr.setAttribute('data-state', r.state);
    tr.appendChild(cell('Observed', [r.observed], 'nowrap'));
    tr.appendChild(cell('Plate', [node('span', 'plate', r.plate)]));
    var speed = [r.speed + ' km/h'];
    if (r.speed_limit) speed.push(node('span', 'sub', 'limit ' + r.speed_limit));
    tr.appendChild(cell('Speed', speed, 'num nowrap'));
    tr.appendChild(cell('Location', [r.location], 'location'));
    tr.appendChild(cell('State', [node('span', 'badge badge-' + r.state, r.state_label)]));
    tr.appendChild(cell('Details', [r.detail, node('span', 'sub mono', 'report ' + r.report_id)], 'detail'));
    return tr;
  }

  var lastRows = '';
  function updateRows(rows) {
    var body = document.querySelector('tbody[data-rows]');
    if (!body) return;
    var key = JSON.stringify(rows);
    if (key === lastRows) return;
    lastRows = key;
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!rows.length) {
      var tr = node('tr', 'empty-row');
      var td = node('td', 'empty', 'No reports yet.');
      td.colSpan = 6;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (r) { body.appendChild(renderRow(r)); });
    var saved = document.querySelector('[data-saved-state]');
    var savedBox = document.getElementById('saved');
    if (saved && savedBox) {
      rows.forEach(function (r) {
        if (r.report_id === savedBox.getAttribute('data-report')) {
          saved.textContent = r.state_label;
          saved.className = 'badge badge-' + r.state;
        }
      });
    }
  }

  function updatePanel(p) {
    var kc = p.key_changed || {};
    var values = {
      kc_server: kc.server || '', kc_pinned: kc.pinned || '', kc_seen: kc.seen || '', kc_command: kc.command || ''
    };
    Array.prototype.forEach.call(document.querySelectorAll('[data-field]'), function (e) {
      var k = e.getAttribute('data-field');
      var v = Object.prototype.hasOwnProperty.call(values, k) ? values[k] : p[k];
      if (v === undefined || v === null || typeof v === 'object') return;
      if (e.textContent !== String(v)) e.textContent = String(v);
    });
    var state = document.getElementById('conn-state');
    if (state) state.className = 'conn conn-' + p.state;
    var warning = document.getElementById('key-warning');
    if (warning) warning.hidden = !p.key_changed;
    document.body.classList.remove('stale');
  }

  var refresh = document.body.getAttribute('data-refresh');
  function tick() {
    if (!refresh) return;
    var table = document.querySelector('table.history');
    var list = table ? table.getAttribute('data-list') : 'recent';
    fetch(refresh + '?list=' + encodeURIComponent(list), {
      credentials: 'same-origin', cache: 'no-store', headers: { 'Accept': 'application/json' }
    }).then(function (res) {
      if (res.status === 401) {
        window.location.assign('/login?msg=expired');
        return null;
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res.json();
    }).then(function (data) {
      if (!data) return;
      updatePanel(data.panel);
      updateRows(data.reports);
    }).catch(function () {
      // The police client itself is not answering: keep what is shown.
      document.body.classList.add('stale');
    });
  }
  if (refresh) {
    window.setInterval(tick, 3000);
  }

  // --- Retry as soon as the browser is back online -------------------------

  window.addEventListener('online', function () {
    if (!csrf) return;
    fetch('/retry', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf, 'Accept': 'application/json' }
    }).then(tick, function () {});
  });

  // --- Focus the error summary so keyboard and screen reader users hear it --

  var summary = document.getElementById('error-summary');
  if (summary) summary.focus();
})();
