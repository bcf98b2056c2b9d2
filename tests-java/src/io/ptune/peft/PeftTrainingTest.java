package io.ptune.peft;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.TestPaths;
import io.ptune.Tolerances;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.internal.JsonFiles;
import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.model.Tokenizer;
import io.ptune.nativebridge.LossAveragingKind;
import io.ptune.nativebridge.LrScheduleKind;
import io.ptune.nativebridge.MicroStepResult;
import io.ptune.nativebridge.NativePromptTrainer;
import io.ptune.nativebridge.OptimizerOptions;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * ptune trains, saves, generates and tokenises as transformers + PEFT do, on stories260k.
 * {@code tests-java/peft/peft_training.py} recorded, with torch 2.13 + transformers 5.17 +
 * PEFT 0.21, the standard PEFT training loop (AdamW, linear warm-up schedule, clipping, loss /
 * accumulation) from an adapter PEFT initialised, on fixed micro-batches. Here ptune starts from
 * that same adapter ({@link PromptAdapter#loadForTraining}), runs the same micro-batches and must
 * give the same loss at every micro-batch, the same gradient norms and learning rates, the same
 * trained tensors (in the files {@link PromptAdapter#save} writes) and PEFT's greedy tokens.
 */
class PeftTrainingTest {
    /**
     * Relative tolerance on per-micro-batch losses, gradient norms and learning rates: each is a model
     * output (fp32 rounding of its magnitude, {@link Tolerances#fp32}) computed after up to 6 AdamW
     * steps whose parameters carry the earlier steps' rounding, so 3 x one output's (measured: 5.9e-6).
     */
    private static final double LOSS_RTOL = Tolerances.fp32(3);
    /**
     * Absolute tolerance on the trained tensors: an AdamW step moves an entry by up to lr (1e-2 or
     * 3e-3 here); rounding changes an update by ~1e-6 of that, a wrong gradient, schedule or decay by
     * ~lr. 2e-5 = 2e-3 lr (measured: 1.1e-6).
     */
    private static final double TENSOR_ATOL = 2e-5;
    private static final List<String> CASES = List.of("prompt_tuning", "prompt_tuning_accum2", "p_tuning_mlp",
            "p_tuning_lstm", "prefix", "prefix_projection", "prompt_tuning_accum2_tokens");

    private static Model model;
    private static List<long[][]> batches;

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() throws IOException {
        model = Model.load(TestPaths.stories260k());
        batches = new ArrayList<>();
        for (JsonNode b : JsonFiles.MAPPER.readTree(root().resolve("batches.json").toFile()).get("batches")) {
            batches.add(new long[][] {flat(b.get("ids")), flat(b.get("mask")), flat(b.get("labels")),
                    {b.get("ids").size(), b.get("ids").get(0).size()}});
        }
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static Path root() {
        return TestPaths.peftResources().resolve("training");
    }

    private static long[] flat(JsonNode rows) {
        List<Long> out = new ArrayList<>();
        rows.forEach(row -> row.forEach(v -> out.add(v.asLong())));
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    private static long[] longs(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asLong();
        }
        return out;
    }

    /** Worst relative error of losses / gradient norms / learning rates seen, for the test output. */
    private static double worstRelative;

    private static void assertClose(double expected, double actual, String what) {
        double err = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-6);
        worstRelative = Math.max(worstRelative, err);
        assertTrue(err <= LOSS_RTOL, what + ": ptune " + actual + " vs PEFT " + expected + " (rel. error " + err + ")");
    }

    @TestFactory
    Stream<DynamicTest> trainingFromPeftsInitGivesPeftsTrajectoryTensorsAndTokens() {
        return CASES.stream().map(name -> DynamicTest.dynamicTest(name, () -> {
            Path caseDir = root().resolve(name);
            JsonNode trajectory = JsonFiles.MAPPER.readTree(caseDir.resolve("trajectory.json").toFile());
            JsonNode s = trajectory.get("settings");
            int steps = s.get("steps").asInt();
            int accum = s.get("accum").asInt();
            OptimizerOptions options = new OptimizerOptions(s.get("lr").asDouble(), s.get("weight_decay").asDouble(),
                    s.get("betas").get(0).asDouble(), s.get("betas").get(1).asDouble(), s.get("eps").asDouble(),
                    s.get("max_grad_norm").asDouble(), accum, steps, s.get("warmup").asLong(), LrScheduleKind.LINEAR,
                    LossAveragingKind.valueOf(s.get("loss_averaging").asText()));
            try (PromptModule prompt = PromptAdapter.loadForTraining(caseDir.resolve("init"), model)) {
                try (NativePromptTrainer trainer = new NativePromptTrainer(model.nativeModel(), prompt.nativePrompt(),
                        options)) {
                    int step = 0;
                    for (int micro = 0; micro < steps * accum; micro++) {
                        long[][] b = batches.get(micro);
                        MicroStepResult r = trainer.trainMicroBatch(b[0], b[1], b[2], (int) b[3][0], (int) b[3][1]);
                        assertClose(trajectory.get("losses").get(micro).asDouble(), r.loss(),
                                name + " loss of micro-batch " + micro);
                        assertEquals((micro + 1) % accum == 0, r.optimizerStepped(), name + " micro-batch " + micro);
                        if (r.optimizerStepped()) {
                            assertClose(trajectory.get("grad_norms").get(step).asDouble(), r.gradNorm(),
                                    name + " gradient norm of step " + step);
                            assertClose(trajectory.get("learning_rates").get(step).asDouble(), r.learningRate(),
                                    name + " learning rate of step " + step);
                            step++;
                        }
                    }
                    assertEquals(steps, step, name + ": optimizer steps");
                }
                Path saved = tmp.resolve(name);
                PromptAdapter.save(prompt, saved);
                assertTrainedTensors(caseDir.resolve("final.safetensors"), saved, name);
                assertGeneratesPeftsTokens(trajectory.get("generations"), saved, name);
            }
        }));
    }

    /** Every tensor PEFT trained, in the adapter ptune saved (PEFT's file or ptune's extra file). */
    private static void assertTrainedTensors(Path peftFinal, Path saved, String name) {
        var expected = Safetensors.open(peftFinal);
        var adapter = Safetensors.open(saved.resolve(PromptAdapter.WEIGHTS_FILE));
        Safetensors.SafetensorsFile extra = null;
        for (String file : List.of(PromptAdapter.P_TUNING_ENCODER_FILE, PromptAdapter.PREFIX_ENCODER_FILE)) {
            if (Files.exists(saved.resolve(file))) {
                extra = Safetensors.open(saved.resolve(file));
            }
        }
        for (String tensor : expected.tensors().keySet()) {
            boolean inAdapter = tensor.equals(PromptAdapter.TENSOR_NAME) || extra == null;
            // Prompt tuning and plain prefix: PEFT's one trainable tensor is the saved prompt_embeddings.
            String savedName = inAdapter ? PromptAdapter.TENSOR_NAME : tensor;
            var file = inAdapter ? adapter : extra;
            assertTrue(file.tensors().containsKey(savedName), name + ": " + savedName + " missing in " + file.path());
            var want = expected.readFloat(tensor);
            var got = file.readFloat(savedName);
            assertArrayEquals(want.shape(), got.shape(), name + ": shape of " + tensor);
            double worst = 0;
            for (int i = 0; i < want.data().length; i++) {
                worst = Math.max(worst, Math.abs(want.data()[i] - got.data()[i]));
            }
            assertTrue(worst <= TENSOR_ATOL, name + ": trained " + tensor + " differs from PEFT's by " + worst);
            System.out.printf("%s: trained %s max abs diff %.2e; worst relative loss/norm/lr error so far %.2e%n",
                    name, tensor, worst, worstRelative);
        }
    }

    /** The saved adapter, loaded for inference, decodes greedily what PEFT's model.generate did. */
    private static void assertGeneratesPeftsTokens(JsonNode generations, Path saved, String name) {
        try (PromptModule trained = PromptAdapter.load(saved, model)) {
            Generator generator = new Generator(model, trained,
                    GenerationConfig.builder().maxNewTokens(16).greedy(true).build());
            for (JsonNode g : generations) {
                long[] promptIds = longs(g.get("prompt_ids"));
                assertArrayEquals(promptIds, model.tokenizer().encode(g.get("text").asText(), true),
                        name + ": tokens of '" + g.get("text").asText() + "'");
                Generation out = generator.generate(List.of(promptIds)).get(0);
                long[] peftIds = longs(g.get("new_ids"));
                // PEFT's tokens, unless a near-tie that rounding may break either way (Tolerances).
                Tolerances.assertSameGreedyTokens(peftIds, out.generatedIds(),
                        i -> Tolerances.last(model.logits(trained, Tolerances.prefixed(promptIds, peftIds, i))),
                        name + ": greedy continuation of '" + g.get("text").asText() + "'");
            }
        }
    }

    @Test
    void textInitialisationGivesPeftsPrompt() {
        var peft = Safetensors.open(root().resolve("init_text.safetensors"));
        String text = peft.metadata().get("text");
        for (int n : new int[] {3, 8}) {
            try (PromptModule prompt = PromptModule.create(model,
                    PromptTuningConfig.builder().numVirtualTokens(n).initText(text).build())) {
                // Copies of embedding rows, no arithmetic: exact.
                assertArrayEquals(peft.readFloat("n" + n).data(), prompt.read("embedding"),
                        "TEXT init of '" + text + "' over " + n + " virtual tokens");
            }
        }
    }

    @Test
    void tokenizerGivesTransformersIds() throws IOException {
        JsonNode reference = JsonFiles.MAPPER.readTree(root().resolve("tokenizer.json").toFile());
        JsonNode cases = reference.get("cases");
        assertTrue(cases.size() >= 5, "tokenizer cases");
        for (JsonNode c : cases) {
            String text = c.get("text").asText();
            assertArrayEquals(longs(c.get("ids")), model.tokenizer().encode(text, true), "ids of '" + text + "'");
        }
        // tokenizer_config.json variants: legacy false (prefix space on the first piece only) and
        // add_prefix_space false, as transformers builds them.
        var variants = reference.get("variants").properties();
        assertEquals(3, variants.size());
        for (var variant : variants) {
            try (Tokenizer tokenizer = Tokenizer.load(root().resolve("tokenizer_variants").resolve(variant.getKey()))) {
                for (JsonNode c : variant.getValue()) {
                    String text = c.get("text").asText();
                    assertArrayEquals(longs(c.get("ids")), tokenizer.encode(text, true),
                            variant.getKey() + ": ids of '" + text + "'");
                }
            }
        }
    }
}
