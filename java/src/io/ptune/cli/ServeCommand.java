package io.ptune.cli;

import io.ptune.model.Model;
import io.ptune.serve.AdapterRegistry;
import io.ptune.serve.AdapterServer;
import io.ptune.serve.ServeConfig;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code ptune serve}: many adapters on one frozen model over HTTP/JSON on 127.0.0.1, requests
 * for different adapters batched into one forward pass. Runs until SIGTERM / Ctrl-C, then
 * finishes the requests in flight.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve many adapters on one model over HTTP on 127.0.0.1: POST /v1/generate, POST /v1/classify,"
                + " GET /v1/adapters, GET /health (see docs/serving.md).",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class ServeCommand extends CliCommand {
    @Mixin
    ModelOptions model;

    @Option(names = "--adapters", split = ",", paramLabel = "NAME=DIR",
            description = "Adapters to load, as name=folder pairs separated by commas (more can be added over HTTP).")
    List<String> adapters = List.of();

    @Option(names = "--port", required = true, paramLabel = "N", description = "TCP port on 127.0.0.1 (0: a free one).")
    int port;

    @Option(names = "--max-batch", paramLabel = "N", description = "Most requests decoding together; new ones join between steps (default: 16).")
    int maxBatch = 16;

    @Option(names = "--max-wait-ms", paramLabel = "MS",
            description = "While nothing decodes, how long a first request waits for others (default: 10).")
    long maxWaitMs = 10;

    @Option(names = "--queue", paramLabel = "N", description = "Requests that may wait; more get 429 (default: 256).")
    int queue = 256;

    @Option(names = "--timeout-ms", paramLabel = "MS", description = "Deadline of a request; 504 after it (default: 30000).")
    long timeoutMs = 30_000;

    @Option(names = "--no-batching", description = "Run requests one at a time (same as --max-batch 1).")
    boolean noBatching;

    @Override
    protected Map<String, String> flagNames() {
        return Map.of("port", "--port", "maxBatch", "--max-batch", "maxWaitMs", "--max-wait-ms",
                "queueCapacity", "--queue", "timeoutMs", "--timeout-ms");
    }

    @Override
    protected int run() throws Exception {
        ServeConfig config = ServeConfig.builder().port(port).maxBatch(noBatching ? 1 : maxBatch).maxWaitMs(maxWaitMs)
                .queueCapacity(queue).timeoutMs(timeoutMs).build();
        Map<String, Path> named = parseAdapters(adapters);
        CountDownLatch stopped = new CountDownLatch(1);
        try (Model lm = model.load(); AdapterRegistry registry = new AdapterRegistry(lm)) {
            named.forEach(registry::load);
            AdapterServer server = AdapterServer.start(registry, config);
            Thread hook = new Thread(() -> {
                server.close();
                try {
                    stopped.await();  // let the registry and the model close before the JVM exits
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "ptune-serve-shutdown");
            Runtime.getRuntime().addShutdownHook(hook);
            out().println("serving on " + server.uri() + " (" + registry.adapters().size() + " adapters)");
            out().flush();
            try {
                server.awaitClosed();
            } finally {
                server.close();
            }
        } finally {
            stopped.countDown();
        }
        return 0;
    }

    /** "a=dir1", "b=dir2" -> {a: dir1, b: dir2}, names unique. */
    static Map<String, Path> parseAdapters(List<String> pairs) {
        Map<String, Path> out = new LinkedHashMap<>();
        for (String pair : pairs) {
            int eq = pair.indexOf('=');
            if (eq <= 0 || eq == pair.length() - 1) {
                throw new IllegalArgumentException("--adapters: '" + pair + "' is not NAME=DIR");
            }
            String name = pair.substring(0, eq).trim();
            if (out.put(name, Path.of(pair.substring(eq + 1).trim())) != null) {
                throw new IllegalArgumentException("--adapters: the name '" + name + "' is given twice");
            }
        }
        return out;
    }
}
