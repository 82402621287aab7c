#!/bin/sh
# jq: a generated JSON document of several MB (an array of N records with
# nested objects and arrays), then transforms: group_by/sort_by/select,
# reduce into an object, to_entries/from_entries, walk, paths, tojson and
# fromjson, @csv/@base64, a stream of records slurped back.  Prints small
# results and the md5 of each big output.  Runs in the current directory.
set -eu
N=${STRATA_OVERRIDE_JQ_RECORDS:-30000}
export LC_ALL=C
jq -nc --argjson n "$N" '[range($n) | {id: ., name: "item-\(. * 7919 % 100003)", group: (. % 97),
    tags: [range(. % 7) | "t\(.)"], price: (. * 1.25),
    nested: {a: [., (. * 2), {deep: [range(. % 4)]}], s: ("x" * (. % 40 + 1))}}]' > data.json
echo "data $(wc -c < data.json) bytes, $(md5sum < data.json | cut -d' ' -f1)"
run() {  # run NAME FILTER [jq options...]: prints the md5 and size of the output
  name=$1; filter=$2; shift 2
  jq "$@" "$filter" data.json > "$name.out"
  echo "$name $(wc -c < "$name.out") $(md5sum < "$name.out" | cut -d' ' -f1)"
}
run group 'group_by(.group) | map({g: .[0].group, n: length, total: (map(.price) | add), names: (map(.name) | sort | .[0:3])})' -c
run select '[.[] | select(.id % 3 == 0) | .tags |= (. + ["extra"]) | .nested.s |= ascii_upcase] | sort_by(.name, .id)' -c
run entries '.[0:(length / 4 | floor)] | map(to_entries | map(.key |= ascii_upcase) | from_entries)' -c
run reduce 'reduce .[] as $x ({}; .[$x.name[0:7]] += [$x.id]) | map_values(length)' -S
run walk '.[0:(length / 3 | floor)] | walk(if type == "number" then . * 2 elif type == "string" then . + "!" else . end) | .[-100:]' -c
run paths '.[0:(length / 8 | floor)] | [paths | map(tostring) | join(".")] | sort' -c
run csv '.[] | [.id, .name, .group, .price, (.tags | join("|"))] | @csv' -r
run b64 '.[0:(length / 3 | floor)][] | tojson | @base64' -r
jq -c '.[]' data.json > stream.ndjson
echo "stream $(wc -l < stream.ndjson) lines"
jq -s -c 'map(.nested.a[2].deep | length) | add' stream.ndjson
jq -c 'tojson | fromjson | length' data.json
jq -r '.[] | .name' data.json | sort -u | wc -l
