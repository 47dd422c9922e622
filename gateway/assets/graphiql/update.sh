#!/usr/bin/env sh
# Fetches the vendored GraphiQL bundles from the npm registry into this
# folder and checks them against SHA256SUMS. To upgrade, change the
# versions below, run `./update.sh --accept` (which rewrites SHA256SUMS),
# and update README.md.
set -eu
GRAPHIQL=4.1.2
REACT=18.3.1
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for p in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
  mkdir "$tmp/$p"
  tar xzf "$tmp/$p.tgz" -C "$tmp/$p"
done
cp "$tmp/graphiql-$GRAPHIQL/package/graphiql.min.js" "$tmp/graphiql-$GRAPHIQL/package/graphiql.min.css" .
cp "$tmp/react-$REACT/package/umd/react.production.min.js" .
cp "$tmp/react-dom-$REACT/package/umd/react-dom.production.min.js" .
cp "$tmp/graphiql-$GRAPHIQL/package/LICENSE" LICENSE-graphiql
cp "$tmp/react-$REACT/package/LICENSE" LICENSE-react
cmp -s "$tmp/react-$REACT/package/LICENSE" "$tmp/react-dom-$REACT/package/LICENSE" \
  || cp "$tmp/react-dom-$REACT/package/LICENSE" LICENSE-react-dom
FILES="graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js"
if [ "${1:-}" = "--accept" ]; then
  # shellcheck disable=SC2086
  sha256sum $FILES > SHA256SUMS
fi
sha256sum -c SHA256SUMS
