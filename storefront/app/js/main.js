// The storefront's entry: the routes and their pages. Each page's module loads when it is
// first visited, so the first load fetches only the shell and the page it lands on.

import { route, start } from './router.js';

/** A route whose page module is fetched on first use. */
const lazy = (load, name) => async (ctx) => (await load())[name](ctx);

route('/', lazy(() => import('./views/events.js'), 'eventsPage'));
route('/events/:eventId', lazy(() => import('./views/event.js'), 'eventPage'));
route('/events/:eventId/queue', lazy(() => import('./views/queue.js'), 'queuePage'));
route('/events/:eventId/shows/:showId/seats', lazy(() => import('./views/seats.js'), 'seatsPage'));
route('/holds/:holdId', lazy(() => import('./views/hold.js'), 'holdPage'));
route('/orders/:holdId', lazy(() => import('./views/order.js'), 'orderPage'));
route('/door', lazy(() => import('./views/door.js'), 'doorPage'));

start().finally(() => {
  // Interactive: the first page is drawn and its controls are wired (the bench and the
  // browser tests wait for this).
  performance.mark('app-ready');
  document.documentElement.setAttribute('data-app-ready', '');
});
