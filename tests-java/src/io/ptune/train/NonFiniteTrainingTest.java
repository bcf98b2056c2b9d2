package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.TestMethods;
import io.ptune.TestPaths;
import io.ptune.TrainingDivergedException;
import io.ptune.adapter.Safetensors;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.AlpacaExample;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --on-nonfinite}: a NaN loss from one poisoned example. The model is stories260K with its
 * output embedding untied (lm_head = the original embedding, so it computes exactly what the real
 * model computes) and one input-embedding row set to +inf, for a token that only the poisoned
 * example contains: every micro-batch holding that example has a NaN loss, every other one is
 * finite.
 */
class NonFiniteTrainingTest {
    @TempDir
    static Path dir;

    private static Model poisoned;
    private static AlpacaDataset clean;
    private static AlpacaDataset withPoison;

    @BeforeAll
    static void poisonOneToken() throws IOException {
        Path source = TestPaths.stories260k();
        clean = AlpacaDataset.load(TestPaths.alpacaEn()).head(6);
        AlpacaExample poison = new AlpacaExample("Spell it.", "", "Zyzzyva quixotic jazz fjord.");
        long token;
        try (Model original = Model.load(source)) {
            Set<Long> used = new HashSet<>();
            for (AlpacaExample e : clean.examples()) {
                for (String text : List.of(e.instruction(), e.input(), e.output())) {
                    for (long id : original.tokenizer().encode(text, true)) {
                        used.add(id);
                    }
                }
            }
            token = -1;
            for (long id : original.tokenizer().encode(poison.output(), false)) {
                if (!used.contains(id) && id > 2) {
                    token = id;
                    break;
                }
            }
        }
        assertTrue(token > 0, "the poisoned example needs a token the clean ones do not use");

        Path model = dir.resolve("poisoned");
        Files.createDirectories(model);
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                if (!f.getFileName().toString().equals("model.safetensors")
                        && !f.getFileName().toString().equals("config.json")) {
                    Files.copy(f, model.resolve(f.getFileName()));
                }
            }
        }
        ObjectNode config = (ObjectNode) JsonFiles.MAPPER.readTree(source.resolve("config.json").toFile());
        config.put("tie_word_embeddings", false);
        Files.write(model.resolve("config.json"), JsonFiles.MAPPER.writeValueAsBytes(config));
        SafetensorsFile weights = Safetensors.open(source.resolve("model.safetensors"));
        Map<String, FloatTensor> tensors = new LinkedHashMap<>();
        for (String name : weights.tensors().keySet()) {
            tensors.put(name, weights.readFloat(name));
        }
        FloatTensor embed = tensors.get("model.embed_tokens.weight");
        tensors.put("lm_head.weight", new FloatTensor(embed.shape(), embed.data().clone()));
        float[] rows = embed.data().clone();
        int hidden = (int) embed.shape()[1];
        for (int i = 0; i < hidden; i++) {
            rows[(int) token * hidden + i] = Float.POSITIVE_INFINITY;
        }
        tensors.put("model.embed_tokens.weight", new FloatTensor(embed.shape(), rows));
        Safetensors.write(model.resolve("model.safetensors"), tensors, Map.of("format", "pt"));
        poisoned = Model.load(model);

        List<AlpacaExample> examples = new ArrayList<>(clean.examples());
        examples.add(2, poison);
        withPoison = new AlpacaDataset(clean.source(), examples);
    }

    @AfterAll
    static void close() {
        if (poisoned != null) {
            poisoned.close();
        }
    }

    private static TrainingConfig.Builder config() {
        return TrainingConfig.builder().maxSteps(10).batchSize(1).gradAccum(2).maxLength(64).learningRate(0.05);
    }

    @Test
    void cleanDataNeverMeetsThePoisonedToken() {
        try (Trainer trainer = Trainer.create(poisoned, TestMethods.get("prompt-tuning"), config().build(), clean)) {
            TrainingSummary summary = trainer.train();
            assertEquals(10, summary.steps());
            assertEquals(0, summary.droppedCycles());
        }
    }

    @Test
    void stopIsTheDefaultAndFailsAtTheStep() {
        try (Trainer trainer = Trainer.create(poisoned, TestMethods.get("prompt-tuning"), config().build(),
                withPoison)) {
            TrainingDivergedException e = assertThrows(TrainingDivergedException.class, trainer::train);
            assertTrue(Double.isNaN(e.loss()), e.getMessage());
            assertTrue(e.getMessage().contains("--on-nonfinite skip"), e.getMessage());
        }
    }

    @Test
    void skipDropsTheCyclesCountsThemAndTrainsToTheEnd() throws IOException {
        List<StepMetrics> steps = new ArrayList<>();
        Path checkpoints = dir.resolve("skip-checkpoints");
        try (Trainer trainer = Trainer.create(poisoned, TestMethods.get("prompt-tuning"),
                config().onNonFinite(NonFinitePolicy.SKIP).build(), withPoison)) {
            trainer.addListener(steps::add);
            trainer.saveCheckpoints(checkpoints, 10, 1);
            TrainingSummary summary = trainer.train();
            // 10 real optimizer steps, each from clean micro-batches only.
            assertEquals(10, summary.steps());
            assertTrue(summary.droppedCycles() >= 1, "the poisoned example is met at least once in 20+ batches");
            assertEquals(summary.droppedCycles(), steps.get(steps.size() - 1).droppedCycles());
            assertTrue(Double.isFinite(summary.lastLoss()));
            PromptModule prompt = trainer.prompt();
            for (float[] values : prompt.readAll(prompt.parameterNames()).values()) {
                for (float v : values) {
                    assertTrue(Float.isFinite(v), "a dropped cycle must not reach the prompt");
                }
            }
        }
        for (FloatTensor moment : readAll(checkpoints.resolve("checkpoint-10").resolve(TrainingCheckpoint.OPTIMIZER_FILE))) {
            for (float v : moment.data()) {
                assertTrue(Float.isFinite(v), "a dropped cycle must not reach the AdamW moments");
            }
        }
        assertTrue(MetricsWriter.toJsonLine(steps.get(steps.size() - 1)).contains("\"dropped_cycles\":"));
    }

    @Test
    void skipStopsAfterTheLimitInARow() {
        try (Trainer trainer = Trainer.create(poisoned, TestMethods.get("prompt-tuning"),
                config().batchSize(7).gradAccum(1).onNonFinite(NonFinitePolicy.SKIP).maxNonFinite(3).build(),
                withPoison)) {
            // Every batch of 7 holds the poisoned example: three drops in a row end the run.
            TrainingDivergedException e = assertThrows(TrainingDivergedException.class, trainer::train);
            assertTrue(e.getMessage().startsWith("3 accumulation cycles in a row"), e.getMessage());
            assertTrue(e.getMessage().contains("--max-nonfinite"), e.getMessage());
        }
    }

    private static List<FloatTensor> readAll(Path file) {
        SafetensorsFile f = Safetensors.open(file);
        List<FloatTensor> out = new ArrayList<>();
        for (String name : f.tensors().keySet()) {
            out.add(f.readFloat(name));
        }
        return out;
    }
}
