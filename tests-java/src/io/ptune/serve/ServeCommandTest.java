package io.ptune.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.TestPaths;
import io.ptune.adapter.PromptAdapter;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ptune serve} in a child JVM: it loads the --adapters, answers on the printed port what
 * Generator gives, and on SIGTERM finishes the request in flight before it exits.
 */
class ServeCommandTest {
    @TempDir
    Path dir;

    @Test
    void serveAnswersAndFinishesInFlightRequestsOnSigterm() throws Exception {
        Map<String, Path> adapters;
        long[] expected;
        try (Model model = Model.load(TestPaths.stories260k())) {
            adapters = ServeFixtures.trainAdapters(model, dir, List.of("prompt-tuning", "prefix"));
            try (PromptModule p = PromptAdapter.load(adapters.get("prefix"), model)) {
                expected = new Generator(model, p, GenerationConfig.builder().maxNewTokens(400).build())
                        .generate("Once upon a time").generatedIds();
            }
        }
        List<String> command = new ArrayList<>(List.of(java(), "-XX:-UsePerfData", "-cp", classPath(),
                "io.ptune.cli.PtuneCli", "serve", "--model", TestPaths.stories260k().toString(), "--adapters",
                "story=" + adapters.get("prompt-tuning") + ",prefix=" + adapters.get("prefix"), "--port", "0",
                "--threads", "1"));
        // Output to a file: destroy() closes the pipes of the process, its last lines would be lost.
        Process process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(dir.resolve("serve.log").toFile()).start();
        try {
            Path logFile = dir.resolve("serve.log");
            Pattern serving = Pattern.compile("serving on (http://127\\.0\\.0\\.1:\\d+) \\(2 adapters\\)");
            String uri = null;
            long started = System.nanoTime();
            while (uri == null && process.isAlive() && System.nanoTime() - started < TimeUnit.SECONDS.toNanos(60)) {
                Matcher m = serving.matcher(java.nio.file.Files.readString(logFile));
                if (m.find()) {
                    uri = m.group(1);
                }
                Thread.sleep(10);
            }
            assertTrue(uri != null, "no 'serving on' line:\n" + java.nio.file.Files.readString(logFile));
            HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            HttpRequest list = HttpRequest.newBuilder(URI.create(uri + "/v1/adapters")).build();
            JsonNode adaptersJson = new ObjectMapper().readTree(client.send(list, HttpResponse.BodyHandlers.ofString())
                    .body());
            assertEquals(2, adaptersJson.get("adapters").size());
            HttpRequest generate = HttpRequest.newBuilder(URI.create(uri + "/v1/generate")).timeout(Duration.ofSeconds(60))
                    .POST(HttpRequest.BodyPublishers.ofString(
                            "{\"adapter\": \"prefix\", \"prompt\": \"Once upon a time\", \"max_new_tokens\": 400}"))
                    .build();
            CompletableFuture<HttpResponse<String>> inFlight = client.sendAsync(generate,
                    HttpResponse.BodyHandlers.ofString());
            // Wait until the server holds the request (in_flight counts the health check too).
            HttpRequest health = HttpRequest.newBuilder(URI.create(uri + "/health")).build();
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (new ObjectMapper().readTree(client.send(health, HttpResponse.BodyHandlers.ofString()).body())
                    .get("in_flight").asInt() < 2 && System.nanoTime() < until) {
                Thread.sleep(1);
            }
            process.destroy();  // SIGTERM
            HttpResponse<String> answer = inFlight.get(60, TimeUnit.SECONDS);
            assertEquals(200, answer.statusCode(), answer.body());
            long[] ids = StreamSupport.stream(new ObjectMapper().readTree(answer.body()).get("generated_ids")
                    .spliterator(), false).mapToLong(JsonNode::asLong).toArray();
            assertArrayEquals(expected, ids);
            assertTrue(process.waitFor(30, TimeUnit.SECONDS), "the server exits after SIGTERM");
            String log = java.nio.file.Files.readString(logFile);
            assertTrue(log.contains("AdapterServer - stopped"), "graceful shutdown logged:\n" + log);
        } finally {
            process.destroyForcibly();
        }
    }

    private static String java() {
        return ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString());
    }

    private static String classPath() {
        return System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    }
}
