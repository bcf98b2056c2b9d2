package io.ptune.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.ptune.AdapterException;
import io.ptune.InvalidConfigException;
import io.ptune.ResourceExhaustedException;
import io.ptune.classify.ClassifierInput;
import io.ptune.classify.PromptClassifier;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.nativebridge.NativeDecodeSession;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.LongStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An HTTP/JSON server on 127.0.0.1 in front of an {@link AdapterRegistry} (the JDK's
 * {@code com.sun.net.httpserver}; JSON with Jackson).
 *
 * <ul>
 *   <li>{@code POST /v1/generate {"adapter", "prompt", "max_new_tokens", "temperature", "top_k",
 *       "top_p", "seed", "greedy"}} returns {@code {"adapter", "text", "generated_ids"}}; a null or
 *       absent adapter is the bare model. Greedy unless a sampling field is given.
 *   <li>{@code POST /v1/classify {"adapter", "text", "text_b"}} returns {@code {"adapter",
 *       "label", "probabilities"}}.
 *   <li>{@code GET /v1/adapters}; {@code POST /v1/adapters/NAME {"path": DIR}} loads one;
 *       {@code DELETE /v1/adapters/NAME} removes one (requests holding it finish first).
 *   <li>{@code GET /health}.
 * </ul>
 *
 * <p>A scheduler thread decodes the generation requests with step-level continuous batching
 * ({@link AdapterRegistry#decoder}): requests for different adapters share each forward pass, and
 * between two decoding steps the queued requests join the running ones (up to {@link
 * ServeConfig#maxBatch} in all), so a request waits for one step rather than for a batch to
 * finish; a request leaves the batch when it ends. While nothing runs, the scheduler waits up to
 * {@link ServeConfig#maxWaitMs} after a request for others to start with it. The queue is bounded (429 when full); every
 * request has a deadline (504 after it); a bad request gets 400 with {@code {"error"}} naming the
 * field, an unknown adapter 404. {@link #close} (also on JVM shutdown, e.g. SIGTERM, when
 * registered by the caller) stops taking requests (503), finishes the queued and running ones,
 * then stops the server. The registry is borrowed.
 */
public final class AdapterServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(AdapterServer.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** The largest request body read. */
    static final int MAX_BODY_BYTES = 1 << 20;
    private static final Set<String> GENERATE_FIELDS =
            Set.of("adapter", "prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "greedy");
    private static final Set<String> CLASSIFY_FIELDS = Set.of("adapter", "text", "text_b");
    /** JSON names of the builder fields InvalidConfigException names. */
    private static final Map<String, String> JSON_FIELDS = Map.of("maxNewTokens", "max_new_tokens", "temperature",
            "temperature", "topK", "top_k", "topP", "top_p", "promptIds", "prompt");

    private final AdapterRegistry registry;
    private final ServeConfig config;
    private final HttpServer http;
    private final ExecutorService handlers;
    private final ScheduledExecutorService timer;
    private final BlockingQueue<Job> queue;
    private final Thread scheduler;
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Requests inside handle(): admitted ones among them are about to be queued. */
    private final AtomicInteger arriving = new AtomicInteger();
    private final AtomicLong steps = new AtomicLong();
    private final AtomicLong stepRows = new AtomicLong();
    private final AtomicInteger largestBatch = new AtomicInteger();
    private final AtomicLong joinedMidDecode = new AtomicLong();
    private final AtomicLong classifyBatches = new AtomicLong();
    private final AtomicLong classified = new AtomicLong();
    /** Classification requests admitted since the last step (scheduler thread only). */
    private final List<ClassifyJob> classifications = new ArrayList<>();
    private final Object lifecycle = new Object();
    private final java.util.concurrent.CountDownLatch stopped = new java.util.concurrent.CountDownLatch(1);
    private volatile boolean closing;
    private boolean closed;

    private AdapterServer(AdapterRegistry registry, ServeConfig config) throws IOException {
        this.registry = registry;
        this.config = config;
        this.queue = new ArrayBlockingQueue<>(config.queueCapacity());
        this.http = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), config.port()), 64);
        AtomicInteger handlerCount = new AtomicInteger();
        this.handlers = Executors.newFixedThreadPool(config.handlerThreads(), r -> {
            Thread t = new Thread(r, "ptune-serve-http-" + handlerCount.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "ptune-serve-timeouts");
            t.setDaemon(true);
            return t;
        });
        http.setExecutor(handlers);
        http.createContext("/", this::handle);
        this.scheduler = new Thread(this::schedule, "ptune-serve-scheduler");
    }

    /**
     * Starts a server on 127.0.0.1:{@code config.port()} (0: a free port).
     *
     * @throws IOException if the port cannot be bound
     */
    public static AdapterServer start(AdapterRegistry registry, ServeConfig config) throws IOException {
        AdapterServer server = new AdapterServer(java.util.Objects.requireNonNull(registry, "registry"),
                java.util.Objects.requireNonNull(config, "config"));
        server.scheduler.start();
        server.http.start();
        LOG.info("serving {} adapter(s) on http://127.0.0.1:{} (max batch {}, max wait {} ms, queue {}, timeout {} ms)",
                registry.adapters().size(), server.port(), config.maxBatch(), config.maxWaitMs(),
                config.queueCapacity(), config.timeoutMs());
        return server;
    }

    /** The bound port. */
    public int port() {
        return http.getAddress().getPort();
    }

    public URI uri() {
        return URI.create("http://127.0.0.1:" + port());
    }

    /** Requests accepted and not yet answered. */
    public int inFlight() {
        return inFlight.get();
    }

    /**
     * Stops taking requests (new ones get 503), finishes every queued and running request (each
     * within its deadline), answers them, then stops the HTTP server. Idempotent; blocks until done.
     */
    @Override
    public void close() {
        synchronized (lifecycle) {
            if (closed) {
                return;
            }
            closed = true;
            closing = true;
            LOG.info("shutting down: finishing {} request(s) in flight", inFlight.get());
            try {
                scheduler.join(config.timeoutMs() + 5_000);
                long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(5_000);
                while (inFlight.get() > 0 && System.nanoTime() < until) {
                    Thread.sleep(5);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (scheduler.isAlive()) {
                scheduler.interrupt();
            }
            // A request that slipped in as the scheduler stopped: refuse it rather than drop it.
            for (Job job; (job = queue.poll()) != null; ) {
                job.reply.complete(Reply.error(503, "the server is shutting down"));
                job.release();
            }
            try {
                long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1_000);
                while (inFlight.get() > 0 && System.nanoTime() < until) {
                    Thread.sleep(5);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            http.stop(0);
            handlers.shutdown();
            timer.shutdownNow();
            stopped.countDown();
            LOG.info("stopped");
        }
    }

    /** Blocks until {@link #close} has finished (from another thread or a shutdown hook). */
    public void awaitClosed() throws InterruptedException {
        stopped.await();
    }

    // ------------------------------------------------------------------------------------------
    // Requests

    /** A response: status and JSON body. */
    record Reply(int status, JsonNode body) {
        static Reply error(int status, String message) {
            ObjectNode node = JSON.createObjectNode();
            node.put("error", message);
            return new Reply(status, node);
        }
    }

    /** A queued request; the scheduler (or a failed offer) releases its lease once. */
    private abstract static class Job {
        final AdapterRegistry.Lease lease;  // null: the bare model
        final long deadline;                // System.nanoTime()
        final CompletableFuture<Reply> reply = new CompletableFuture<>();
        ScheduledFuture<?> timeout;

        Job(AdapterRegistry.Lease lease, long deadline) {
            this.lease = lease;
            this.deadline = deadline;
        }

        void release() {
            if (lease != null) {
                lease.close();
            }
        }
    }

    private static final class GenerateJob extends Job {
        final AdapterRegistry.Request request;

        GenerateJob(AdapterRegistry.Request request, long deadline) {
            super(request.adapter(), deadline);
            this.request = request;
        }
    }

    private static final class ClassifyJob extends Job {
        final String text;
        final String textB;

        ClassifyJob(AdapterRegistry.Lease lease, String text, String textB, long deadline) {
            super(lease, deadline);
            this.text = text;
            this.textB = textB;
        }
    }

    /** A client error: status and message. */
    private static final class HttpError extends RuntimeException {
        final int status;

        HttpError(int status, String message) {
            super(message, null, false, false);
            this.status = status;
        }
    }

    private void handle(HttpExchange exchange) {
        // Admission: a request that read `closing` as false is queued and answered even if close()
        // starts meanwhile (the scheduler waits for `arriving` to drain); later ones get 503.
        arriving.incrementAndGet();
        boolean refuse = closing;
        inFlight.incrementAndGet();
        try {
            if (refuse && !exchange.getRequestMethod().equals("GET")) {
                throw new HttpError(503, "the server is shutting down");
            }
            Job job = route(exchange);
            if (job == null) {
                return;  // answered already
            }
            job.reply.whenCompleteAsync((reply, failure) -> {
                if (job.timeout != null) {
                    job.timeout.cancel(false);
                }
                send(exchange, reply != null ? reply : Reply.error(500, String.valueOf(failure)));
            }, handlers);
        } catch (HttpError e) {
            send(exchange, Reply.error(e.status, e.getMessage()));
        } catch (RuntimeException e) {
            LOG.warn("request {} {} failed", exchange.getRequestMethod(), exchange.getRequestURI(), e);
            send(exchange, errorReply(e));
        } finally {
            arriving.decrementAndGet();
        }
    }

    /** Answers what needs no queue and returns null, or returns the queued job. */
    private Job route(HttpExchange exchange) {
        String method = exchange.getRequestMethod();
        String path = exchange.getRequestURI().getPath();
        switch (path) {
            case "/health" -> {
                requireMethod(method, "GET");
                send(exchange, new Reply(closing ? 503 : 200, health()));
                return null;
            }
            case "/v1/adapters" -> {
                requireMethod(method, "GET");
                send(exchange, new Reply(200, adapters()));
                return null;
            }
            case "/v1/generate" -> {
                requireMethod(method, "POST");
                return enqueue(generateJob(readBody(exchange)));
            }
            case "/v1/classify" -> {
                requireMethod(method, "POST");
                return enqueue(classifyJob(readBody(exchange)));
            }
            default -> {
                if (path.startsWith("/v1/adapters/")) {
                    send(exchange, changeAdapter(method, path.substring("/v1/adapters/".length()), exchange));
                    return null;
                }
                throw new HttpError(404, "no endpoint " + path + " (endpoints: POST /v1/generate, POST /v1/classify,"
                        + " GET /v1/adapters, POST|DELETE /v1/adapters/NAME, GET /health)");
            }
        }
    }

    private static void requireMethod(String method, String expected) {
        if (!method.equals(expected)) {
            throw new HttpError(405, "use " + expected + ", not " + method);
        }
    }

    private Job enqueue(Job job) {
        if (!queue.offer(job)) {
            job.release();
            throw new HttpError(429, "the queue is full (" + config.queueCapacity() + " requests); retry later");
        }
        long delay = job.deadline - System.nanoTime();
        job.timeout = timer.schedule(() -> job.reply.complete(Reply.error(504, "the request timed out after "
                + config.timeoutMs() + " ms")), Math.max(0, delay), TimeUnit.NANOSECONDS);
        return job;
    }

    private JsonNode readBody(HttpExchange exchange) {
        byte[] bytes;
        try (InputStream in = exchange.getRequestBody()) {
            bytes = in.readNBytes(MAX_BODY_BYTES + 1);
        } catch (IOException e) {
            throw new HttpError(400, "could not read the request body: " + e.getMessage());
        }
        if (bytes.length > MAX_BODY_BYTES) {
            throw new HttpError(413, "the request body exceeds " + MAX_BODY_BYTES + " bytes");
        }
        JsonNode body;
        try {
            body = JSON.readTree(bytes);
        } catch (IOException e) {
            throw new HttpError(400, "the body is not valid JSON: " + firstLine(e));
        }
        if (body == null || !body.isObject()) {
            throw new HttpError(400, "the body must be a JSON object");
        }
        return body;
    }

    private static String firstLine(Exception e) {
        String m = e instanceof JsonProcessingException j ? j.getOriginalMessage() : e.getMessage();
        return m == null ? e.toString() : m.lines().findFirst().orElse(m);
    }

    private static void checkFields(JsonNode body, Set<String> known) {
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String field = it.next();
            if (!known.contains(field)) {
                throw new HttpError(400, "unknown field '" + field + "' (fields: " + String.join(", ",
                        new java.util.TreeSet<>(known)) + ")");
            }
        }
    }

    private static String text(JsonNode body, String field, boolean required) {
        JsonNode node = body.get(field);
        if (node == null || node.isNull()) {
            if (required) {
                throw new HttpError(400, "field '" + field + "' is required (a string)");
            }
            return null;
        }
        if (!node.isTextual()) {
            throw new HttpError(400, "field '" + field + "' must be a string, got " + node.getNodeType().name()
                    .toLowerCase(java.util.Locale.ROOT));
        }
        return node.textValue();
    }

    private static Long integer(JsonNode body, String field) {
        JsonNode node = body.get(field);
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.isIntegralNumber() || !node.canConvertToLong()) {
            throw new HttpError(400, "field '" + field + "' must be an integer, got " + node);
        }
        return node.longValue();
    }

    private static Double number(JsonNode body, String field) {
        JsonNode node = body.get(field);
        if (node == null || node.isNull()) {
            return null;
        }
        if (!node.isNumber()) {
            throw new HttpError(400, "field '" + field + "' must be a number, got " + node);
        }
        return node.doubleValue();
    }

    private AdapterRegistry.Lease lease(String name) {
        if (name == null) {
            return null;
        }
        try {
            return registry.acquire(name);
        } catch (UnknownAdapterException e) {
            throw new HttpError(404, e.getMessage());
        }
    }

    private long deadline() {
        return System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(config.timeoutMs());
    }

    private GenerateJob generateJob(JsonNode body) {
        checkFields(body, GENERATE_FIELDS);
        String adapter = text(body, "adapter", false);
        String prompt = text(body, "prompt", true);
        Long maxNewTokens = integer(body, "max_new_tokens");
        Double temperature = number(body, "temperature");
        Long topK = integer(body, "top_k");
        Double topP = number(body, "top_p");
        Long seed = integer(body, "seed");
        JsonNode greedyNode = body.get("greedy");
        if (greedyNode != null && !greedyNode.isNull() && !greedyNode.isBoolean()) {
            throw new HttpError(400, "field 'greedy' must be true or false, got " + greedyNode);
        }
        boolean sampling = temperature != null || topK != null || topP != null || seed != null;
        boolean greedy = greedyNode == null || greedyNode.isNull() ? !sampling : greedyNode.booleanValue();
        if (greedy && sampling) {
            throw new HttpError(400, "field 'greedy' is true, but temperature, top_k, top_p or seed ask for sampling;"
                    + " drop one or the other");
        }
        GenerationConfig generation;
        try {
            GenerationConfig.Builder b = GenerationConfig.builder().greedy(greedy);
            if (maxNewTokens != null) {
                b.maxNewTokens(Math.toIntExact(Math.min(maxNewTokens, Integer.MAX_VALUE)));
            }
            if (temperature != null) {
                b.temperature(temperature);
            }
            if (topK != null) {
                b.topK(Math.toIntExact(Math.max(Math.min(topK, Integer.MAX_VALUE), Integer.MIN_VALUE)));
            }
            if (topP != null) {
                b.topP(topP);
            }
            if (seed != null) {
                b.seed(seed);
            }
            generation = b.build();
        } catch (InvalidConfigException e) {
            throw new HttpError(400, jsonMessage(e));
        }
        long[] ids = registry.model().tokenizer().encode(prompt, true);
        if (ids.length == 0) {
            throw new HttpError(400, "field 'prompt' has no tokens; send a non-empty prompt");
        }
        AdapterRegistry.Lease lease = lease(adapter);
        try {
            AdapterRegistry.Request request = new AdapterRegistry.Request(lease, ids, generation);
            registry.check(request);
            return new GenerateJob(request, deadline());
        } catch (InvalidConfigException e) {
            release(lease);
            throw new HttpError(400, jsonMessage(e));
        } catch (RuntimeException e) {
            release(lease);
            throw e;
        }
    }

    private ClassifyJob classifyJob(JsonNode body) {
        checkFields(body, CLASSIFY_FIELDS);
        String adapter = text(body, "adapter", true);
        String text = text(body, "text", true);
        String textB = text(body, "text_b", false);
        AdapterRegistry.Lease lease = lease(adapter);
        if (lease.info().task() != AdapterInfo.Task.CLASSIFY) {
            lease.close();
            throw new HttpError(400, "field 'adapter': '" + adapter + "' is a generation adapter, not a classifier;"
                    + " use POST /v1/generate");
        }
        return new ClassifyJob(lease, text, textB, deadline());
    }

    private static void release(AdapterRegistry.Lease lease) {
        if (lease != null) {
            lease.close();
        }
    }

    /** "maxNewTokens: must be > 0" -> "field 'max_new_tokens' must be > 0". */
    private static String jsonMessage(InvalidConfigException e) {
        String field = JSON_FIELDS.getOrDefault(e.field(), e.field());
        String message = e.getMessage();
        String problem = message.startsWith(e.field() + ": ") ? message.substring(e.field().length() + 2) : message;
        return "field '" + field + "' " + problem;
    }

    private Reply changeAdapter(String method, String name, HttpExchange exchange) {
        if (name.isEmpty() || name.contains("/")) {
            throw new HttpError(404, "no endpoint " + exchange.getRequestURI().getPath());
        }
        if (closing) {
            throw new HttpError(503, "the server is shutting down");
        }
        switch (method) {
            case "DELETE" -> {
                if (!registry.remove(name)) {
                    throw new HttpError(404, new UnknownAdapterException(name,
                            registry.adapters().stream().map(AdapterInfo::name).toList()).getMessage());
                }
                ObjectNode out = JSON.createObjectNode();
                out.put("removed", name);
                return new Reply(200, out);
            }
            case "POST" -> {
                JsonNode body = readBody(exchange);
                checkFields(body, Set.of("path"));
                String dir = text(body, "path", true);
                try {
                    return new Reply(201, adapterJson(registry.load(name, Path.of(dir))));
                } catch (java.nio.file.InvalidPathException e) {
                    throw new HttpError(400, "field 'path': " + e.getMessage());
                } catch (IllegalArgumentException e) {
                    throw new HttpError(e.getMessage() != null && e.getMessage().contains("loaded already") ? 409 : 400,
                            e.getMessage());
                } catch (AdapterException e) {
                    throw new HttpError(400, "field 'path': " + e.getMessage());
                }
            }
            default -> throw new HttpError(405, "use POST (load) or DELETE (remove), not " + method);
        }
    }

    private ObjectNode health() {
        ObjectNode out = JSON.createObjectNode();
        out.put("status", closing ? "shutting_down" : "ok");
        out.put("adapters", registry.adapters().size());
        out.put("queued", queue.size());
        out.put("in_flight", inFlight.get());
        out.put("max_batch", config.maxBatch());
        out.put("decoding_steps", steps.get());
        out.put("step_rows", stepRows.get());
        out.put("largest_batch", largestBatch.get());
        out.put("joined_mid_decode", joinedMidDecode.get());
        out.put("classify_batches", classifyBatches.get());
        out.put("classified", classified.get());
        return out;
    }

    private ObjectNode adapters() {
        ObjectNode out = JSON.createObjectNode();
        ArrayNode list = out.putArray("adapters");
        registry.adapters().forEach(a -> list.add(adapterJson(a)));
        return out;
    }

    private static ObjectNode adapterJson(AdapterInfo a) {
        ObjectNode node = JSON.createObjectNode();
        node.put("name", a.name());
        node.put("task", a.task().name().toLowerCase(java.util.Locale.ROOT));
        node.put("method", a.method());
        node.put("virtual_tokens", a.virtualTokens());
        if (!a.labels().isEmpty()) {
            ArrayNode labels = node.putArray("labels");
            a.labels().forEach(labels::add);
        }
        return node;
    }

    private void send(HttpExchange exchange, Reply reply) {
        try (exchange) {
            byte[] bytes = JSON.writeValueAsBytes(reply.body());
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(reply.status(), bytes.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(bytes);
            }
        } catch (IOException e) {
            LOG.debug("could not answer {} (client gone?): {}", exchange.getRequestURI(), e.toString());
        } finally {
            inFlight.decrementAndGet();
        }
    }

    private static Reply errorReply(Throwable e) {
        if (e instanceof HttpError h) {
            return Reply.error(h.status, h.getMessage());
        }
        if (e instanceof UnknownAdapterException) {
            return Reply.error(404, e.getMessage());
        }
        if (e instanceof InvalidConfigException c) {
            return Reply.error(400, jsonMessage(c));
        }
        if (e instanceof IllegalArgumentException) {
            return Reply.error(400, e.getMessage());
        }
        if (e instanceof ResourceExhaustedException || e instanceof IllegalStateException) {
            return Reply.error(503, e.getMessage());
        }
        return Reply.error(500, e.getMessage() == null ? e.toString() : e.getMessage());
    }

    // ------------------------------------------------------------------------------------------
    // Scheduling

    /** A generation request in the decoder: its job and the tokens it has so far. */
    private static final class Running {
        final GenerateJob job;
        final long[] tokens;
        int count;

        Running(GenerateJob job) {
            this.job = job;
            this.tokens = new long[job.request.config().maxNewTokens()];
        }
    }

    /**
     * Step-level continuous batching: between two decoding steps the queued requests join the
     * running batch (up to maxBatch), so a request waits for one step, not for a whole batch to
     * finish. While nothing runs, the scheduler waits for a request, then up to maxWaitMs for more.
     */
    private void schedule() {
        Map<Long, Running> running = new HashMap<>();
        AdapterRegistry.Decoder[] decoder = {null};  // created on the first generation request
        try {
            while (true) {
                if (running.isEmpty()) {
                    Job first;
                    try {
                        first = queue.poll(50, TimeUnit.MILLISECONDS);
                    } catch (InterruptedException e) {
                        if (closing) {
                            break;
                        }
                        continue;
                    }
                    if (first == null) {
                        if (closing && arriving.get() == 0 && queue.isEmpty()) {
                            break;
                        }
                        continue;
                    }
                    admit(first, running, decoder, false);
                    long until = first.deadline - TimeUnit.MILLISECONDS.toNanos(config.timeoutMs())
                            + TimeUnit.MILLISECONDS.toNanos(config.maxWaitMs());  // arrival + max wait
                    while (running.size() + classifications.size() < config.maxBatch()) {
                        Job next;
                        try {
                            long left = until - System.nanoTime();
                            next = left > 0 && !closing ? queue.poll(left, TimeUnit.NANOSECONDS) : queue.poll();
                        } catch (InterruptedException e) {
                            next = queue.poll();
                        }
                        if (next == null) {
                            break;
                        }
                        admit(next, running, decoder, false);
                    }
                } else {
                    // Decoding: whatever is queued joins at this step, without waiting.
                    for (Job next; running.size() + classifications.size() < config.maxBatch()
                            && (next = queue.poll()) != null; ) {
                        admit(next, running, decoder, true);
                    }
                }
                classifyAll();
                if (!running.isEmpty()) {
                    step(decoder, running);
                }
            }
        } finally {
            classifications.forEach(c -> finish(c, Reply.error(503, "the server stopped")));
            running.values().forEach(r -> finish(r.job, Reply.error(503, "the server stopped")));
            if (decoder[0] != null) {
                decoder[0].close();
            }
            LOG.debug("scheduler stopped");
        }
    }

    /** Starts a job: a classification runs now, a generation request joins the decoder. */
    private void admit(Job job, Map<Long, Running> running, AdapterRegistry.Decoder[] decoder, boolean decoding) {
        if (job.reply.isDone()) {
            job.release();  // timed out while queued
            return;
        }
        if (job instanceof ClassifyJob c) {
            classifications.add(c);
            return;
        }
        GenerateJob g = (GenerateJob) job;
        try {
            if (decoder[0] == null) {
                registry.check(g.request);  // an encoder's registry: a clear 400, no decoder
                decoder[0] = registry.decoder();
            }
            if (!decoder[0].canJoin(g.request)) {
                // A two-stage adapter runs on its own copy of the model: alone, now.
                finish(g, new Reply(200, generationJson(g, registry.generate(List.of(g.request)).get(0))));
                return;
            }
            running.put(decoder[0].add(g.request), new Running(g));
            if (decoding) {
                joinedMidDecode.incrementAndGet();
            }
        } catch (RuntimeException e) {
            finish(g, errorReply(e));
        }
    }

    /** One decoding step of every running request; answers those that ended. */
    private void step(AdapterRegistry.Decoder[] decoder, Map<Long, Running> running) {
        // Requests past their deadline (answered 504 by the timer) leave the batch.
        for (var it = running.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Long, Running> e = it.next();
            if (e.getValue().job.reply.isDone()) {
                decoder[0].cancel(e.getKey());
                e.getValue().job.release();
                it.remove();
            }
        }
        if (running.isEmpty()) {
            return;
        }
        List<NativeDecodeSession.Token> tokens;
        try {
            tokens = decoder[0].step();
        } catch (RuntimeException e) {
            LOG.warn("a decoding step of {} request(s) failed: {}", running.size(), e.getMessage());
            running.values().forEach(r -> finish(r.job, errorReply(e)));
            running.clear();
            decoder[0].close();
            decoder[0] = null;  // a fresh session for the next requests
            return;
        } catch (Error e) {
            running.values().forEach(r -> finish(r.job, Reply.error(500, e.toString())));
            running.clear();
            throw e;
        }
        steps.incrementAndGet();
        stepRows.addAndGet(tokens.size());
        largestBatch.accumulateAndGet(tokens.size(), Math::max);
        for (NativeDecodeSession.Token t : tokens) {
            Running r = running.get(t.id());
            if (r == null) {
                continue;
            }
            r.tokens[r.count++] = t.token();
            if (t.done()) {
                running.remove(t.id());
                Generation g = decoder[0].generation(r.job.request, Arrays.copyOf(r.tokens, r.count));
                finish(r.job, new Reply(200, generationJson(r.job, g)));
            }
        }
    }

    private static void finish(Job job, Reply reply) {
        job.reply.complete(reply);
        job.release();
    }

    /**
     * Classifies the requests admitted since the last step: those for the same classifier as one
     * batch ({@link PromptClassifier#classify(List)}), each equal to its text alone up to rounding.
     */
    private void classifyAll() {
        if (classifications.isEmpty()) {
            return;
        }
        Map<PromptClassifier, List<ClassifyJob>> groups = new IdentityHashMap<>();
        for (ClassifyJob job : classifications) {
            if (job.reply.isDone()) {
                job.release();  // timed out while queued
                continue;
            }
            try {
                groups.computeIfAbsent(job.lease.classifier(), k -> new ArrayList<>()).add(job);
            } catch (RuntimeException e) {
                finish(job, errorReply(e));
            }
        }
        classifications.clear();
        groups.forEach((classifier, jobs) -> {
            List<ClassifyJob> encoded = new ArrayList<>();
            List<ClassifierInput> inputs = new ArrayList<>();
            for (ClassifyJob job : jobs) {
                try {
                    inputs.add(classifier.encode(job.text, job.textB));
                    encoded.add(job);
                } catch (RuntimeException e) {
                    finish(job, errorReply(e));  // this text alone: too long, or the like
                }
            }
            if (encoded.isEmpty()) {
                return;
            }
            try {
                List<PromptClassifier.Prediction> predictions = classifier.classify(inputs);
                classifyBatches.incrementAndGet();
                classified.addAndGet(encoded.size());
                for (int i = 0; i < encoded.size(); i++) {
                    finish(encoded.get(i), new Reply(200, predictionJson(encoded.get(i).lease.name(),
                            predictions.get(i))));
                }
            } catch (RuntimeException e) {
                encoded.forEach(job -> finish(job, errorReply(e)));
            }
        });
    }

    private static ObjectNode predictionJson(String adapter, PromptClassifier.Prediction p) {
        ObjectNode out = JSON.createObjectNode();
        out.put("adapter", adapter);
        out.put("label", p.label());
        ObjectNode probabilities = out.putObject("probabilities");
        p.probabilities().forEach(probabilities::put);
        return out;
    }

    private static ObjectNode generationJson(GenerateJob job, Generation g) {
        ObjectNode out = JSON.createObjectNode();
        if (job.lease != null) {
            out.put("adapter", job.lease.name());
        } else {
            out.putNull("adapter");
        }
        out.put("text", g.text());
        ArrayNode ids = out.putArray("generated_ids");
        LongStream.of(g.generatedIds()).forEach(ids::add);
        return out;
    }
}
