package io.ptune.bench;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A closed-loop load generator for {@code ptune serve} (bench/serve.sh): {@code concurrency}
 * clients on loopback send {@code requests} POST /v1/generate requests in all (greedy,
 * {@code maxNewTokens} each), round-robin over the adapters and a few prompts, each client sending
 * its next request when the previous one is answered. A warm-up of {@code concurrency} requests
 * is not counted. Stops early after {@code maxSeconds}. Prints one JSON line: requests, ok,
 * errors, seconds, requests/s, p50/p99/max latency in ms. Not a JUnit test.
 *
 * <pre>
 *   java -cp "target/test-classes:target/classes:target/lib/*" io.ptune.bench.ServeLoad \
 *       URL REQUESTS CONCURRENCY MAX_NEW_TOKENS MAX_SECONDS ADAPTER[,ADAPTER...]
 * </pre>
 */
public final class ServeLoad {
    private static final String[] PROMPTS = {"Once upon a time", "The little dog", "Tom had a blue kite.",
        "One day, Lily went to the park", "The cat sat on the mat and"};

    private ServeLoad() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: ServeLoad URL REQUESTS CONCURRENCY MAX_NEW_TOKENS MAX_SECONDS ADAPTERS");
            System.exit(2);
        }
        URI uri = URI.create(args[0] + "/v1/generate");
        int requests = Integer.parseInt(args[1]);
        int concurrency = Integer.parseInt(args[2]);
        int maxNewTokens = Integer.parseInt(args[3]);
        long maxNanos = TimeUnit.SECONDS.toNanos(Long.parseLong(args[4]));
        String[] adapters = args[5].split(",");
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
        ExecutorService pool = Executors.newFixedThreadPool(concurrency);
        try {
            run(client, pool, uri, concurrency, concurrency, maxNewTokens, adapters, Long.MAX_VALUE);  // warm-up
            long start = System.nanoTime();
            Result r = run(client, pool, uri, requests, concurrency, maxNewTokens, adapters, start + maxNanos);
            double seconds = (System.nanoTime() - start) / 1e9;
            long[] sorted = r.latenciesNanos.stream().mapToLong(Long::longValue).sorted().toArray();
            System.out.println(String.format(Locale.ROOT,
                    "{\"requests\": %d, \"ok\": %d, \"errors\": %d, \"seconds\": %.3f, \"rps\": %.2f, "
                            + "\"p50_ms\": %.1f, \"p99_ms\": %.1f, \"max_ms\": %.1f, \"first_error\": %s}",
                    sorted.length, sorted.length - r.errors.get(), r.errors.get(), seconds,
                    (sorted.length - r.errors.get()) / seconds, percentile(sorted, 0.50), percentile(sorted, 0.99),
                    sorted.length == 0 ? 0.0 : sorted[sorted.length - 1] / 1e6,
                    r.firstError == null ? "null" : "\"" + r.firstError.replace("\"", "'") + "\""));
        } finally {
            pool.shutdownNow();
        }
    }

    private static final class Result {
        final List<Long> latenciesNanos = java.util.Collections.synchronizedList(new ArrayList<>());
        final AtomicInteger errors = new AtomicInteger();
        volatile String firstError;
    }

    private static Result run(HttpClient client, ExecutorService pool, URI uri, int requests, int concurrency,
            int maxNewTokens, String[] adapters, long deadline) throws Exception {
        Result result = new Result();
        AtomicInteger next = new AtomicInteger();
        List<Future<?>> clients = new ArrayList<>();
        for (int c = 0; c < concurrency; c++) {
            clients.add(pool.submit(() -> {
                for (int i; (i = next.getAndIncrement()) < requests && System.nanoTime() < deadline; ) {
                    String body = String.format(Locale.ROOT, "{\"adapter\": \"%s\", \"prompt\": \"%s\", "
                            + "\"max_new_tokens\": %d}", adapters[i % adapters.length], PROMPTS[i % PROMPTS.length],
                            maxNewTokens);
                    HttpRequest request = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(60))
                            .POST(HttpRequest.BodyPublishers.ofString(body)).build();
                    long t0 = System.nanoTime();
                    try {
                        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
                        if (response.statusCode() != 200) {
                            result.errors.incrementAndGet();
                            if (result.firstError == null) {
                                result.firstError = response.statusCode() + " " + response.body();
                            }
                        }
                    } catch (Exception e) {
                        result.errors.incrementAndGet();
                        if (result.firstError == null) {
                            result.firstError = e.toString();
                        }
                    }
                    result.latenciesNanos.add(System.nanoTime() - t0);
                }
                return null;
            }));
        }
        for (Future<?> f : clients) {
            f.get();
        }
        return result;
    }

    private static double percentile(long[] sorted, double q) {
        if (sorted.length == 0) {
            return 0;
        }
        int index = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, index))] / 1e6;
    }
}
