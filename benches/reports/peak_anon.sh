#!/bin/bash
# peak RssAnon (heap etc., excluding the mapped segment files) of a command, sampled every 20 ms
"$@" & pid=$!; max=0
while kill -0 $pid 2>/dev/null; do a=$(awk '/RssAnon/{print $2}' /proc/$pid/status 2>/dev/null); [ -n "$a" ] && [ "$a" -gt "$max" ] && max=$a; sleep 0.02; done
wait $pid; echo "peak RssAnon ${max} KB" >&2
