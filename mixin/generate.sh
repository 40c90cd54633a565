#!/bin/sh
# Regenerates mixin/generated/ and deploy/monitoring/prometheusrule.yaml from the mixin's
# jsonnet with Debian's `jsonnet` (apt-get install jsonnet); no libraries to vendor.
# tests/tests/mixin.rs checks that the committed files are what this produces.
set -eu
cd "$(dirname "$0")"
rm -rf generated
mkdir -p generated/dashboards
jsonnet -S -m generated generated.jsonnet >/dev/null
jsonnet -S prometheusrule.jsonnet >../deploy/monitoring/prometheusrule.yaml
