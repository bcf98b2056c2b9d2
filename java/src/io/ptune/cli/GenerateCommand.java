package io.ptune.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generation;
import io.ptune.inference.Generator;
import io.ptune.internal.JsonFiles;
import io.ptune.model.CausalLm;
import io.ptune.prompt.PromptModule;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code ptune generate}: continues a prompt, with or without a trained adapter. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate a continuation, optionally behind a trained prompt adapter.",
        exitCodeOnInvalidInput = 1, exitCodeOnExecutionException = 1)
final class GenerateCommand extends CliCommand {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--adapter", paramLabel = "DIR", description = "Adapter directory of any prompt method (PEFT layout).")
    Path adapter;

    @ArgGroup(exclusive = true, multiplicity = "1")
    InputOptions input;

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

    @Override
    protected int run() {
        GenerationConfig config = generationConfig();
        input.validate();
        try (CausalLm lm = CausalLm.load(model);
                PromptModule prompt = loadAdapter(adapter, lm)) {
            long[] ids = input.tokenIds(lm.tokenizer());
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
                out().println(lm.tokenizer().decode(all, true));
            }
            out().flush();
        }
        return 0;
    }

    private GenerationConfig generationConfig() {
        boolean sampling = temperature != null || topK != null || topP != null || seed != null;
        if (greedy && sampling) {
            throw new IllegalArgumentException("--greedy cannot be combined with --temperature, --top-k,"
                    + " --top-p or --seed; drop --greedy to sample");
        }
        GenerationConfig.Builder builder = GenerationConfig.builder().greedy(!sampling);
        if (maxNewTokens != null) {
            builder.maxNewTokens(maxNewTokens);
        }
        if (temperature != null) {
            builder.temperature(temperature);
        }
        if (topK != null) {
            builder.topK(topK);
        }
        if (topP != null) {
            builder.topP(topP);
        }
        if (seed != null) {
            builder.seed(seed);
        }
        return builder.build();
    }
}
