package io.ptune.bench;

import io.ptune.inference.Generation;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Greedy generation throughput with a prompt-tuning prompt: {@code runs} timed generations (after
 * one untimed) of {@code newTokens} tokens for a batch of {@code batch} random prompts of
 * {@code promptLength} tokens, in one process, the model loaded once. Prints one JSON line; run by
 * bench/generate.sh next to bench/peer_peft_generate.py. Not a JUnit test.
 *
 * <pre>
 *   java -cp "target/test-classes:target/classes:target/lib/*" io.ptune.bench.GenerateBench \
 *       MODEL_DIR BATCH PROMPT_LENGTH NEW_TOKENS VIRTUAL_TOKENS RUNS
 * </pre>
 */
public final class GenerateBench {
    private GenerateBench() {}

    public static void main(String[] args) {
        Path modelDir = Path.of(args[0]);
        int batch = Integer.parseInt(args[1]);
        int promptLength = Integer.parseInt(args[2]);
        int newTokens = Integer.parseInt(args[3]);
        int virtualTokens = Integer.parseInt(args[4]);
        int runs = Integer.parseInt(args[5]);
        try (Model model = Model.load(modelDir);
                PromptModule prompt = PromptModule.create(model,
                        PromptTuningConfig.builder().numVirtualTokens(virtualTokens).seed(0).build())) {
            Random random = new Random(0);
            List<long[]> prompts = new ArrayList<>();
            for (int b = 0; b < batch; b++) {
                long[] ids = new long[promptLength];
                ids[0] = 1;
                for (int t = 1; t < promptLength; t++) {
                    ids[t] = 3 + random.nextInt(Math.min(model.architecture().vocabSize(), 512) - 3);
                }
                prompts.add(ids);
            }
            Generator generator = new Generator(model, prompt,
                    GenerationConfig.builder().maxNewTokens(newTokens).greedy(true).build());
            generator.generate(prompts);
            List<Double> seconds = new ArrayList<>();
            long generated = 0;
            for (int r = 0; r < runs; r++) {
                long start = System.nanoTime();
                List<Generation> out = generator.generate(prompts);
                seconds.add((System.nanoTime() - start) / 1e9);
                generated = out.stream().mapToLong(g -> g.generatedIds().length).sum();
            }
            Collections.sort(seconds);
            double median = seconds.get(seconds.size() / 2);
            System.out.printf(Locale.ROOT, "{\"impl\":\"ptune\",\"tokens_per_s\":%.3f,\"run_s_median\":%.4f,"
                    + "\"run_s_min\":%.4f,\"run_s_max\":%.4f,\"generated_tokens\":%d,\"threads\":%d}%n",
                    generated / median, median, seconds.get(0), seconds.get(seconds.size() - 1), generated,
                    io.ptune.model.ComputeThreads.get());
        }
    }
}
