// PolyScale's GraphiQL start-up: an external script, so that the page's
// Content-Security-Policy needs no 'unsafe-inline' for scripts.
(function () {
  'use strict';
  // Radix dialogs (react-style-singleton) add a <style> element carrying
  // this nonce; the page's policy allows styles with it and no others.
  var nonce = document.currentScript && document.currentScript.nonce;
  if (nonce) {
    window.__webpack_nonce__ = nonce;
  }
  // The page is served at the GraphQL endpoint itself.
  var endpoint = window.location.origin + window.location.pathname;
  var fetcher = GraphiQL.createFetcher({ url: endpoint });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true }));
})();
