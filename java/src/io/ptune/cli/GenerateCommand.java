package io.ptune.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generation;
import io.ptune.inference.Generator;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.prompt.PromptModule;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code ptune generate}: continues a prompt, with or without a trained adapter. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate a continuation, optionally behind a trained prompt adapter.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class GenerateCommand extends ModelInputCommand {
    @Option(names = "--max-new-tokens", paramLabel = "N", description = "Most tokens to generate (default: 64).")
    Integer maxNewTokens;

    @Option(names = "--greedy", description = "Always take the most likely token (the default).")
    boolean greedy;

    @Option(names = "--temperature", paramLabel = "T", description = "Sample at this temperature (> 0).")
    Double temperature;

    @Option(names = "--top-k", paramLabel = "K", description = "Sample among the K most likely tokens.")
    Integer topK;

    @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling threshold in (0, 1].")
    Double topP;

    @Option(names = "--seed", paramLabel = "S", description = "Sampling seed (default: 0).")
    Long seed;

    @Option(names = "--json", description = "Print one JSON object: prompt_ids, generated_ids, text.")
    boolean json;

    @Override
    protected Map<String, String> flagNames() {
        return Map.of("maxNewTokens", "--max-new-tokens", "temperature", "--temperature",
                "topK", "--top-k", "topP", "--top-p");
    }

    private GenerationConfig config;

    @Override
    protected void checkFlags() {
        boolean sampling = temperature != null || topK != null || topP != null || seed != null;
        if (greedy && sampling) {
            throw new IllegalArgumentException("--greedy cannot be combined with --temperature, --top-k,"
                    + " --top-p or --seed; drop --greedy to sample");
        }
        GenerationConfig.Builder builder = GenerationConfig.builder().greedy(!sampling);
        ifGiven(maxNewTokens, builder::maxNewTokens);
        ifGiven(temperature, builder::temperature);
        ifGiven(topK, builder::topK);
        ifGiven(topP, builder::topP);
        ifGiven(seed, builder::seed);
        config = builder.build();
    }

    @Override
    protected void run(Model lm, PromptModule prompt, long[] ids) {
        Generation generation = new Generator(lm, prompt, config).generate(List.of(ids)).get(0);
        if (json) {
            ObjectNode result = JsonFiles.MAPPER.createObjectNode();
            ArrayNode promptIds = result.putArray("prompt_ids");
            LongStream.of(generation.promptIds()).forEach(promptIds::add);
            ArrayNode generatedIds = result.putArray("generated_ids");
            LongStream.of(generation.generatedIds()).forEach(generatedIds::add);
            result.put("text", generation.text());
            out().println(result.toString());
        } else {
            long[] all = LongStream.concat(LongStream.of(generation.promptIds()),
                    LongStream.of(generation.generatedIds())).toArray();
            out().println(lm.hasTokenizer() ? lm.tokenizer().decode(all, true) : java.util.Arrays.toString(all));
        }
    }
}
