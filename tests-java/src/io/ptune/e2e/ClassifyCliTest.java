package io.ptune.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun;
import io.ptune.TestPaths;
import io.ptune.CliRun.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train --task classify}, {@code eval} and {@code classify} on a tiny BERT with an MLM head:
 * the documented outputs (eval's table and JSON, classify's JSON, per-epoch dev metrics in
 * --metrics-out), zero-shot PET without an adapter, and bad input ending in a clear message and
 * exit code 1.
 */
class ClassifyCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String BERT = TestPaths.root().resolve("tests-java/resources/families/bert/model").toString();

    @TempDir
    Path dir;

    private Path train;
    private Path dev;

    @BeforeEach
    void writeData() throws Exception {
        train = TinySentiment.writeTsv(dir.resolve("train.tsv"));
        dev = dir.resolve("dev.jsonl");
        Files.writeString(dev, """
                {"text": "fun and great", "label": "positive"}
                {"text": "bad and dull", "label": "negative"}
                """);
    }

    private static Result run(List<String> args) {
        return CliRun.run(args.toArray(String[]::new));
    }

    private List<String> trainArgs(String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "--task", "classify", "--model", BERT, "--data",
                train.toString(), "--out", dir.resolve("out").toString(), "--epochs", "2", "--batch-size", "4"));
        args.addAll(List.of(extra));
        return args;
    }

    @Test
    void trainEvalClassify() throws Exception {
        Path metrics = dir.resolve("metrics.jsonl");
        Result trained = run(trainArgs("--dev", dev.toString(), "--method", "prefix-tuning", "--virtual-tokens", "2",
                "--metrics-out", metrics.toString()));
        assertEquals(0, trained.exitCode(), trained.err());
        assertTrue(trained.out().contains("dev accuracy"), trained.out());
        List<JsonNode> epochs = new ArrayList<>();
        for (String line : Files.readAllLines(metrics)) {
            JsonNode node = JSON.readTree(line);
            if (node.has("epoch")) {
                epochs.add(node);
            }
        }
        assertEquals(2, epochs.size());
        for (String field : List.of("step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1")) {
            assertTrue(epochs.get(1).has(field), field);
        }
        Path adapter = dir.resolve("out");
        assertEquals("SEQ_CLS", JSON.readTree(adapter.resolve("adapter_config.json").toFile()).get("task_type").asText());

        Result eval = run(List.of("eval", "--model", BERT, "--adapter", adapter.toString(), "--data", dev.toString(),
                "--json"));
        assertEquals(0, eval.exitCode(), eval.err());
        JsonNode report = JSON.readTree(eval.out());
        assertEquals(List.of("accuracy", "macro_f1", "labels", "per_class", "confusion"),
                iterable(report.fieldNames()));
        assertEquals("[\"negative\",\"positive\"]", report.get("labels").toString());
        assertEquals(1, report.get("per_class").get("positive").get("support").asInt());
        assertEquals(List.of("precision", "recall", "f1", "support"),
                iterable(report.get("per_class").get("negative").fieldNames()));
        assertEquals(2, report.get("confusion").size());
        long total = 0;
        for (JsonNode row : report.get("confusion")) {
            for (JsonNode v : row) {
                total += v.asLong();
            }
        }
        assertEquals(2, total);
        assertEquals(epochs.get(1).get("dev_accuracy").asDouble(), report.get("accuracy").asDouble(), 1e-12,
                "eval of the saved classifier = the last epoch's dev accuracy");

        Result table = run(List.of("eval", "--model", BERT, "--adapter", adapter.toString(), "--data", dev.toString()));
        assertEquals(0, table.exitCode(), table.err());
        assertTrue(table.out().contains("macro-F1") && table.out().contains("confusion"), table.out());

        Result classify = run(List.of("classify", "--model", BERT, "--adapter", adapter.toString(), "--text",
                "a fun film", "--json"));
        assertEquals(0, classify.exitCode(), classify.err());
        JsonNode prediction = JSON.readTree(classify.out());
        assertEquals(List.of("label", "probabilities"), iterable(prediction.fieldNames()));
        double sum = prediction.get("probabilities").get("negative").asDouble()
                + prediction.get("probabilities").get("positive").asDouble();
        assertEquals(1.0, sum, 1e-9);
        assertEquals(1, classify.out().strip().lines().count(), "one JSON line");
    }

    @Test
    void zeroShotPetNeedsNoAdapter() throws Exception {
        Result eval = run(List.of("eval", "--model", BERT, "--data", dev.toString(), "--template", "{text} It was {mask}.",
                "--verbalizer", "negative=bad;positive=the,and", "--calibrate", "--json"));
        assertEquals(0, eval.exitCode(), eval.err());
        assertEquals(2, JSON.readTree(eval.out()).get("per_class").size());
        Result classify = run(List.of("classify", "--model", BERT, "--text", "a fun film", "--verbalizer",
                "negative=bad;positive=the"));
        assertEquals(0, classify.exitCode(), classify.err());
        assertTrue(JSON.readTree(classify.out()).has("label"));
    }

    @Test
    void badInputFailsWithAClearMessage() throws Exception {
        assertFails(run(trainArgs("--head", "verbalizer", "--template", "{text} It was great.", "--verbalizer",
                "negative=bad;positive=good")), "--template", "has no {mask} slot");
        assertFails(run(trainArgs("--head", "verbalizer", "--verbalizer", "negative=bad;positive=\u2603")),
                "--verbalizer", "is not in the vocabulary");
        assertFails(run(trainArgs("--head", "verbalizer", "--verbalizer", "positive=good")), "--verbalizer",
                "label 'negative' of the data is missing from the verbalizer");
        Path oneClass = dir.resolve("one.csv");
        Files.writeString(oneClass, "text,label\nfun,positive\ngreat,positive\n");
        List<String> args = trainArgs();
        args.set(args.indexOf(train.toString()), oneClass.toString());
        assertFails(run(args), "only one class", "at least two");
        Path unknown = dir.resolve("bad.jsonl");
        Files.writeString(unknown, "{\"text\": \"fun\", \"label\": \"positive\"}\n{\"text\": \"meh\", \"label\": \"meh\"}\n");
        assertFails(run(trainArgs("--dev", unknown.toString())), "bad.jsonl:2", "label 'meh'");
        assertFails(run(trainArgs("--loss", "focal", "--focal-alpha", "0.5")), "--focal-alpha", "one per class");
        assertFails(run(List.of("train", "--model", BERT, "--data", train.toString(), "--out", dir.resolve("x").toString(),
                "--head", "linear")), "need --task classify");
        assertFails(run(List.of("eval", "--model", BERT, "--data", dev.toString())), "--adapter", "--verbalizer");
        assertFalse(Files.exists(dir.resolve("out")), "nothing written by failed runs");
    }

    private static void assertFails(Result result, String... fragments) {
        assertEquals(1, result.exitCode(), result.out() + result.err());
        assertTrue(result.err().startsWith("error: "), result.err());
        for (String fragment : fragments) {
            assertTrue(result.err().contains(fragment), "'" + fragment + "' not in: " + result.err());
        }
    }

    private static List<String> iterable(java.util.Iterator<String> it) {
        List<String> out = new ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }
}
