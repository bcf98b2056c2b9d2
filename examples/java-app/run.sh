#!/usr/bin/env bash
# Builds and runs examples/java-app, a separate Maven project that uses ptune only through the jars
# in the local Maven repository (put there by `mvn -B install` in the repository root): it trains
# a 16-token prompt on the shipped stories260k model (frozen) with the stories about Max the dog,
# saves the adapter and generates before and after. Exits non-zero when the build or the run fails
# or the output is not what training gives: a loss that falls, an adapter, a story about Max, and the
# native library loaded from the installed platform jar (not from this checkout's target/).
set -euo pipefail
app=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$app/../.." && pwd)
start=$SECONDS
fail() { echo "java-app: FAILED: $*" >&2; exit 1; }

mvn -B -q -f "$app/pom.xml" package || fail "the build failed (is ptune installed? run: mvn -B install -DskipTests)"

work="$app/target/run"
rm -rf "$work" && mkdir -p "$work"
# Run from outside the checkout, on the jars only; JavaCPP extracts the native libraries of the
# platform jar to ~/.javacpp/cache and logs where it loads them from (debug on).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-1}
if ! (cd "$work" && java -Dorg.bytedeco.javacpp.logger.debug=true -cp "$app/target/java-app.jar:$app/target/lib/*" \
    io.ptune.examples.Main "$root/examples/stories260k" "$root/examples/data/max_the_dog.json" "$work/adapter" \
    >"$work/stdout.txt" 2>"$work/stderr.txt"); then
  tail -n 30 "$work/stderr.txt" >&2
  fail "the application exited with an error (log: $work/stderr.txt)"
fi
cat "$work/stdout.txt"

loaded=$(grep -E '^Debug: Loading .*libptune\.so' "$work/stderr.txt" || true)
[[ -n "$loaded" ]] || fail "no 'Loading ...libptune.so' line from JavaCPP in $work/stderr.txt"
[[ "$loaded" != *"$root/target"* ]] || fail "libptune.so was loaded from the checkout, not the installed jar: $loaded"
read -r steps first last < <(sed -n 's/^trained \([0-9]*\) steps, .*loss \([0-9.]*\) -> \([0-9.]*\)$/\1 \2 \3/p' \
    "$work/stdout.txt")
[[ -n "${steps:-}" ]] || fail "no 'trained N steps ... loss A -> B' line"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.9 * a) }' || fail "the loss did not fall by 10%: $first -> $last"
for f in adapter_config.json adapter_model.safetensors; do
  [[ -s "$work/adapter/$f" ]] || fail "the adapter has no $f"
done
grep -q '^after: .*\bMax\b' "$work/stdout.txt" || fail "the story after training is not about Max"
echo "java-app: OK in $((SECONDS - start)) s (libptune.so from ${loaded##* })"
