package io.ptune.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.classify.PromptClassifier;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link AdapterServer} on an ephemeral loopback port, over java.net.http: answers equal what
 * {@link Generator} (ptune generate) gives each adapter alone, concurrent requests for different
 * adapters are batched, a full queue answers 429, a late request 504, bad requests 400 naming the
 * field, unknown adapters 404, and close() finishes the requests in flight.
 */
class AdapterServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> SERVED = List.of("prompt-tuning", "p-tuning-mlp", "prefix");

    @TempDir
    static Path dir;

    private static Model model;
    private static Map<String, Path> adapters;
    private static Path classifier;
    private static AdapterRegistry registry;
    private static AdapterServer server;
    private static final HttpClient CLIENT = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();

    @BeforeAll
    static void start() throws IOException {
        model = Model.load(TestPaths.stories260k());
        adapters = ServeFixtures.trainAdapters(model, dir, SERVED);
        classifier = ServeFixtures.classifier(model, dir.resolve("classifier"));
        registry = new AdapterRegistry(model);
        adapters.forEach(registry::load);
        registry.load("mood", classifier);
        server = AdapterServer.start(registry, ServeConfig.builder().port(0).maxBatch(8).maxWaitMs(20).build());
    }

    @AfterAll
    static void stop() {
        server.close();
        registry.close();
        model.close();
    }

    record Answer(int status, JsonNode body) {}

    static Answer call(AdapterServer s, String method, String path, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(s.uri() + path)).timeout(Duration.ofSeconds(120));
        b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        HttpResponse<String> r = CLIENT.send(b.build(), HttpResponse.BodyHandlers.ofString());
        assertEquals("application/json", r.headers().firstValue("Content-Type").orElse(""), path);
        return new Answer(r.statusCode(), JSON.readTree(r.body()));
    }

    static CompletableFuture<Answer> callAsync(AdapterServer s, String path, String body) {
        HttpRequest request = HttpRequest.newBuilder(URI.create(s.uri() + path)).timeout(Duration.ofSeconds(120))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        return CLIENT.sendAsync(request, HttpResponse.BodyHandlers.ofString()).thenApply(r -> {
            try {
                return new Answer(r.statusCode(), JSON.readTree(r.body()));
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
    }

    static String generateBody(String adapter, String prompt, int maxNewTokens) {
        ObjectNode body = JSON.createObjectNode();
        if (adapter != null) {
            body.put("adapter", adapter);
        }
        body.put("prompt", prompt);
        body.put("max_new_tokens", maxNewTokens);
        return body.toString();
    }

    /** What `ptune generate --adapter DIR --prompt TEXT` gives: Generator on the text alone. */
    static Generation expected(String adapter, String prompt, GenerationConfig config) {
        long[] ids = model.tokenizer().encode(prompt, true);
        if (adapter == null) {
            return new Generator(model, null, config).generate(List.of(ids)).get(0);
        }
        try (PromptModule p = PromptAdapter.load(adapters.get(adapter), model)) {
            return new Generator(model, p, config).generate(List.of(ids)).get(0);
        }
    }

    static float[] nextLogits(String adapter, long[] ids) {
        if (adapter == null) {
            return Tolerances.last(model.logits(null, ids));
        }
        try (PromptModule p = PromptAdapter.load(adapters.get(adapter), model)) {
            return Tolerances.last(model.logits(p, ids));
        }
    }

    static long[] ids(JsonNode answer) {
        return StreamSupport.stream(answer.get("generated_ids").spliterator(), false).mapToLong(JsonNode::asLong)
                .toArray();
    }

    @Test
    void eachAdapterAnswersWhatGeneratorGivesItAlone() throws Exception {
        List<String> names = new ArrayList<>(SERVED);
        names.add(null);
        for (String name : names) {
            Answer a = call(server, "POST", "/v1/generate", generateBody(name, "Once upon a time", 12));
            assertEquals(200, a.status(), a.body().toString());
            Generation g = expected(name, "Once upon a time", GenerationConfig.builder().maxNewTokens(12).build());
            assertArrayEquals(g.generatedIds(), ids(a.body()), name);
            assertEquals(g.text(), a.body().get("text").asText(), name);
            assertEquals(name == null ? null : name, a.body().get("adapter").isNull() ? null
                    : a.body().get("adapter").asText());
        }
        // Sampling fields: the request's own seed, as `ptune generate --seed`.
        ObjectNode sampled = (ObjectNode) JSON.readTree(generateBody("prefix", "The dog", 10));
        sampled.put("temperature", 0.8).put("top_k", 40).put("top_p", 0.9).put("seed", 7);
        Answer a = call(server, "POST", "/v1/generate", sampled.toString());
        assertEquals(200, a.status(), a.body().toString());
        assertArrayEquals(expected("prefix", "The dog", GenerationConfig.builder().greedy(false).temperature(0.8)
                .topK(40).topP(0.9).seed(7).maxNewTokens(10).build()).generatedIds(), ids(a.body()));
    }

    @Test
    void concurrentRequestsForDifferentAdaptersAreBatchedAndEachEqualsItsRowAlone() throws Exception {
        String[] prompts = {"Once upon a time", "The cat", "Tom had a blue kite.", "One day"};
        Map<String, long[]> expected = new HashMap<>();
        List<String> keys = new ArrayList<>();
        List<CompletableFuture<Answer>> answers = new ArrayList<>();
        JsonNode before = call(server, "GET", "/health", null).body();
        long stepsBefore = before.get("decoding_steps").asLong();
        for (int i = 0; i < 24; i++) {
            String adapter = i % 4 == 3 ? null : SERVED.get(i % 3);
            String prompt = prompts[i % prompts.length];
            int n = 6 + i % 5;
            String key = adapter + "|" + prompt + "|" + n;
            keys.add(key);
            expected.computeIfAbsent(key, k -> expected(adapter, prompt,
                    GenerationConfig.builder().maxNewTokens(n).build()).generatedIds());
            answers.add(callAsync(server, "/v1/generate", generateBody(adapter, prompt, n)));
        }
        for (int i = 0; i < answers.size(); i++) {
            Answer a = answers.get(i).get();
            assertEquals(200, a.status(), a.body().toString());
            String[] key = keys.get(i).split("\\|");
            String adapter = key[0].equals("null") ? null : key[0];
            long[] input = model.tokenizer().encode(key[1], true);
            long[] alone = expected.get(keys.get(i));
            // Another batch shape rounds differently: the same tokens up to a near-tie.
            Tolerances.assertSameGreedyTokens(alone, ids(a.body()),
                    t -> nextLogits(adapter, Tolerances.prefixed(input, alone, t)), keys.get(i));
        }
        JsonNode health = call(server, "GET", "/health", null).body();
        assertTrue(health.get("largest_batch").asInt() > 1, "requests were batched: " + health);
        // 24 requests of 6-10 tokens one after another would take 192 steps.
        assertTrue(health.get("decoding_steps").asLong() - stepsBefore < 150, "requests shared steps: " + health);
        // At most 8 decode together and their lengths differ: queued requests joined running ones.
        assertTrue(health.get("joined_mid_decode").asLong() > before.get("joined_mid_decode").asLong(),
                "requests joined a batch that was decoding: " + health);
    }

    @Test
    void badRequestsGet400NamingTheFieldAndUnknownAdapters404() throws Exception {
        Map<String, String> bad = new java.util.LinkedHashMap<>();
        bad.put("{\"adapter\": \"prefix\"}", "'prompt' is required");
        bad.put("{\"prompt\": 5}", "'prompt' must be a string");
        bad.put("{\"prompt\": \"x\", \"max_new_tokens\": \"ten\"}", "'max_new_tokens' must be an integer");
        bad.put("{\"prompt\": \"x\", \"max_new_tokens\": 0}", "'max_new_tokens' must be > 0");
        bad.put("{\"prompt\": \"x\", \"max_new_tokens\": 600}", "'max_new_tokens' is 600");
        bad.put("{\"prompt\": \"x\", \"temperature\": 0}", "'temperature' must be > 0");
        bad.put("{\"prompt\": \"x\", \"top_p\": 1.5}", "'top_p' must be in (0, 1]");
        bad.put("{\"prompt\": \"x\", \"greedy\": true, \"seed\": 3}", "'greedy' is true");
        bad.put("{\"prompt\": \"x\", \"max_tokens\": 3}", "unknown field 'max_tokens'");
        bad.put("{\"prompt\": ", "not valid JSON");
        bad.put("[1, 2]", "must be a JSON object");
        for (Map.Entry<String, String> e : bad.entrySet()) {
            Answer a = call(server, "POST", "/v1/generate", e.getKey());
            assertEquals(400, a.status(), e.getKey() + " -> " + a.body());
            assertTrue(a.body().get("error").asText().contains(e.getValue()), e.getKey() + " -> " + a.body());
        }
        Answer unknown = call(server, "POST", "/v1/generate", generateBody("nope", "x", 3));
        assertEquals(404, unknown.status());
        assertTrue(unknown.body().get("error").asText().contains("no adapter named 'nope'"), unknown.body().toString());
        Answer classifyGenerator = call(server, "POST", "/v1/classify", "{\"adapter\": \"prefix\", \"text\": \"x\"}");
        assertEquals(400, classifyGenerator.status());
        assertTrue(classifyGenerator.body().get("error").asText().contains("not a classifier"));
        Answer generateClassifier = call(server, "POST", "/v1/generate", generateBody("mood", "x", 3));
        assertEquals(400, generateClassifier.status());
        assertTrue(generateClassifier.body().get("error").asText().contains("is a classifier"));
        assertEquals(405, call(server, "GET", "/v1/generate", null).status());
        assertEquals(404, call(server, "GET", "/v2/nothing", null).status());
    }

    @Test
    void randomBodiesGetClientErrorsNeverServerErrors() throws Exception {
        java.util.Random random = new java.util.Random(17);
        String[] fields = {"adapter", "prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "greedy",
            "text", "text_b", "x"};
        String[] values = {"null", "true", "-1", "0", "1", "3", "1e308", "-1e308", "0.5", "9223372036854775807",
            "18446744073709551616", "\"\"", "\"prefix\"", "\"mood\"", "\"Once\"", "\"\\u0000\"", "[]", "{}",
            "[1, 2]", "\"\\ud800\""};
        for (int i = 0; i < 150; i++) {
            StringBuilder body = new StringBuilder("{");
            int n = random.nextInt(5);
            for (int f = 0; f < n; f++) {
                body.append(f == 0 ? "" : ", ").append('"').append(fields[random.nextInt(fields.length)]).append("\": ")
                        .append(values[random.nextInt(values.length)]);
            }
            body.append(random.nextInt(10) == 0 ? "" : "}");
            String path = random.nextBoolean() ? "/v1/generate" : "/v1/classify";
            Answer a = call(server, "POST", path, body.toString());
            assertTrue(a.status() == 200 || (a.status() >= 400 && a.status() < 500), path + " " + body + " -> "
                    + a.status() + " " + a.body());
            if (a.status() != 200) {
                assertTrue(a.body().get("error").asText().length() > 10, a.body().toString());
            }
        }
        assertEquals("ok", call(server, "GET", "/health", null).body().get("status").asText());
    }

    @Test
    void classifyAdaptersAndHealth() throws Exception {
        Answer a = call(server, "POST", "/v1/classify", "{\"adapter\": \"mood\", \"text\": \"The girl smiled.\"}");
        assertEquals(200, a.status(), a.body().toString());
        try (PromptClassifier direct = PromptClassifier.load(model, classifier)) {
            PromptClassifier.Prediction p = direct.classify("The girl smiled.");
            assertEquals(p.label(), a.body().get("label").asText());
            for (Map.Entry<String, Double> e : p.probabilities().entrySet()) {
                assertEquals(e.getValue(), a.body().get("probabilities").get(e.getKey()).asDouble(), 1e-12);
            }
        }
        JsonNode health = call(server, "GET", "/health", null).body();
        assertEquals("ok", health.get("status").asText());
    }

    @Test
    void concurrentClassificationsRunAsBatchesAndEachEqualsItsTextAlone() throws Exception {
        String[] texts = {"The girl smiled.", "Tom was sad and cried.", "What a lovely sunny day!", "The dog ran away.",
            "She hated the rain.", "They laughed and played in the park all day long."};
        long batchesBefore = call(server, "GET", "/health", null).body().get("classify_batches").asLong();
        List<CompletableFuture<Answer>> answers = new ArrayList<>();
        for (int i = 0; i < 18; i++) {
            answers.add(callAsync(server, "/v1/classify", "{\"adapter\": \"mood\", \"text\": \"" + texts[i % texts.length]
                    + "\"}"));
        }
        try (PromptClassifier direct = PromptClassifier.load(model, classifier)) {
            for (int i = 0; i < answers.size(); i++) {
                Answer a = answers.get(i).get();
                assertEquals(200, a.status(), a.body().toString());
                PromptClassifier.Prediction alone = direct.classify(texts[i % texts.length]);
                // Another batch shape rounds the fp32 scores differently: probabilities within 1e-5.
                double top = 0;
                double second = 0;
                for (Map.Entry<String, Double> e : alone.probabilities().entrySet()) {
                    assertEquals(e.getValue(), a.body().get("probabilities").get(e.getKey()).asDouble(), 1e-5);
                    second = Math.max(second, Math.min(top, e.getValue()));
                    top = Math.max(top, e.getValue());
                }
                if (top - second > 1e-4) {
                    assertEquals(alone.label(), a.body().get("label").asText(), texts[i % texts.length]);
                }
            }
        }
        JsonNode health = call(server, "GET", "/health", null).body();
        assertTrue(health.get("classify_batches").asLong() - batchesBefore < 18, "classifications shared batches: "
                + health);
    }

    @Test
    void adaptersAreListedAddedAndRemovedOverHttp() throws Exception {
        JsonNode list = call(server, "GET", "/v1/adapters", null).body().get("adapters");
        List<String> names = new ArrayList<>();
        list.forEach(n -> names.add(n.get("name").asText()));
        assertTrue(names.containsAll(List.of("prompt-tuning", "p-tuning-mlp", "prefix", "mood")), names.toString());
        Answer added = call(server, "POST", "/v1/adapters/extra", "{\"path\": \"" + adapters.get("prefix") + "\"}");
        assertEquals(201, added.status(), added.body().toString());
        assertEquals("prefix-tuning", added.body().get("method").asText());
        assertEquals(409, call(server, "POST", "/v1/adapters/extra", "{\"path\": \"" + adapters.get("prefix") + "\"}")
                .status());
        assertEquals(400, call(server, "POST", "/v1/adapters/other", "{\"path\": \"" + dir.resolve("missing") + "\"}")
                .status());
        Answer a = call(server, "POST", "/v1/generate", generateBody("extra", "The cat", 5));
        assertArrayEquals(expected("prefix", "The cat", GenerationConfig.builder().maxNewTokens(5).build())
                .generatedIds(), ids(a.body()));
        assertEquals(200, call(server, "DELETE", "/v1/adapters/extra", null).status());
        assertEquals(404, call(server, "DELETE", "/v1/adapters/extra", null).status());
        assertEquals(404, call(server, "POST", "/v1/generate", generateBody("extra", "The cat", 5)).status());
    }

    @Test
    void aFullQueueAnswers429() throws Exception {
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.load("a", adapters.get("prefix"));
            AdapterServer small = AdapterServer.start(own, ServeConfig.builder().port(0).maxBatch(1).queueCapacity(1)
                    .build());
            try {
                // The first request is taken off the queue and decoding before the others arrive:
                // sent all at once, the scheduler could still hold the first in the one queue slot
                // while the eleven others were refused (1 answered, 11 refused under load).
                List<CompletableFuture<Answer>> answers = new ArrayList<>();
                long stepsBefore = call(small, "GET", "/health", null).body().get("decoding_steps").asLong();
                answers.add(callAsync(small, "/v1/generate", generateBody("a", "Once upon a time", 400)));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (call(small, "GET", "/health", null).body().get("decoding_steps").asLong() == stepsBefore) {
                    assertTrue(System.nanoTime() < deadline, "the first request did not start decoding in 30 s");
                    Thread.sleep(2);
                }
                for (int i = 1; i < 12; i++) {
                    answers.add(callAsync(small, "/v1/generate", generateBody("a", "Once upon a time", 400)));
                }
                int ok = 0;
                int full = 0;
                for (CompletableFuture<Answer> f : answers) {
                    Answer a = f.get();
                    if (a.status() == 429) {
                        full++;
                        assertTrue(a.body().get("error").asText().contains("queue is full"), a.body().toString());
                    } else {
                        assertEquals(200, a.status(), a.body().toString());
                        ok++;
                    }
                }
                assertTrue(full > 0 && ok >= 2, ok + " answered, " + full + " refused");
            } finally {
                small.close();
            }
        }
    }

    @Test
    void aRequestPastItsDeadlineAnswers504() throws Exception {
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.load("a", adapters.get("prompt-tuning"));
            AdapterServer late = AdapterServer.start(own, ServeConfig.builder().port(0).timeoutMs(1).build());
            try {
                Answer a = call(late, "POST", "/v1/generate", generateBody("a", "Once upon a time", 300));
                assertEquals(504, a.status(), a.body().toString());
                assertTrue(a.body().get("error").asText().contains("timed out after 1 ms"), a.body().toString());
            } finally {
                late.close();
            }
            // The lease of the late request was released: the adapter can be removed and closes.
            assertTrue(own.remove("a"));
        }
    }

    @Test
    void aRequestThatTimesOutWhileDecodingLeavesTheBatchAndTheServerGoesOn() throws Exception {
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.load("a", adapters.get("prefix"));
            AdapterServer late = AdapterServer.start(own, ServeConfig.builder().port(0).timeoutMs(15).build());
            try {
                Answer a = call(late, "POST", "/v1/generate", generateBody("a", "Once upon a time", 480));
                assertEquals(504, a.status(), a.body().toString());
                // The cancelled row stops decoding: the step count settles well before 480 steps.
                long last = -1;
                for (int i = 0; i < 100; i++) {
                    Thread.sleep(50);
                    long now = call(late, "GET", "/health", null).body().get("decoding_steps").asLong();
                    if (now == last) {
                        break;
                    }
                    last = now;
                }
                JsonNode health = call(late, "GET", "/health", null).body();
                assertEquals(last, health.get("decoding_steps").asLong(), "decoding stopped: " + health);
                assertTrue(last < 479, "the late row left the batch: " + health);
                assertEquals(1, health.get("in_flight").asInt(), health.toString());
            } finally {
                late.close();
            }
            assertTrue(own.remove("a"), "the late request's lease was released");
        }
    }

    @Test
    void closeFinishesTheRequestsInFlightThenRefuses() throws Exception {
        try (AdapterRegistry own = new AdapterRegistry(model)) {
            own.load("a", adapters.get("p-tuning-mlp"));
            // One request per batch: each answer is bit-identical to Generator's (same shapes).
            AdapterServer closing = AdapterServer.start(own, ServeConfig.builder().port(0).maxBatch(1).build());
            URI uri = closing.uri();
            long[] expected = expected("p-tuning-mlp", "The cat", GenerationConfig.builder().maxNewTokens(150).build())
                    .generatedIds();
            List<CompletableFuture<Answer>> answers = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                answers.add(callAsync(closing, "/v1/generate", generateBody("a", "The cat", 150)));
            }
            long until = System.nanoTime() + 30_000_000_000L;
            while (closing.inFlight() < 6 && System.nanoTime() < until) {
                Thread.sleep(2);
            }
            closing.close();
            for (CompletableFuture<Answer> f : answers) {
                Answer a = f.get();
                assertEquals(200, a.status(), a.body().toString());
                assertArrayEquals(expected, ids(a.body()));
            }
            HttpRequest after = HttpRequest.newBuilder(URI.create(uri + "/health")).timeout(Duration.ofSeconds(5))
                    .build();
            assertThrows(IOException.class, () -> CLIENT.send(after, HttpResponse.BodyHandlers.ofString()));
        }
    }
}
