// Live sections: an element with data-refresh="<url>" is replaced every few seconds by the fragment that url answers,
// until the fragment's data-refresh is empty (the job or runs finished); a section marked data-reload then reloads the page
// once, to show what only a finished job has (its gallery, its download).
(() => {
  const every = 2000;
  const tick = async () => {
    const live = document.querySelector('[data-refresh]:not([data-refresh=""])');
    if (!live) return;
    try {
      const answer = await fetch(live.dataset.refresh, { headers: { 'X-Requested-With': 'XMLHttpRequest' }, credentials: 'same-origin', cache: 'no-store' });
      if (!answer.ok) return; // signed out or gone: stop; the next navigation tells why
      const template = document.createElement('template');
      template.innerHTML = (await answer.text()).trim();
      const next = template.content.firstElementChild;
      if (next) {
        const reload = live.dataset.reload === 'true';
        live.replaceWith(next);
        if (!next.dataset.refresh) { if (reload) location.reload(); return; }
      }
    } catch (e) { /* a passing network error: try again */ }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
})();
