package io.ptune.prompt;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.InvalidConfigException;
import io.ptune.internal.JsonFiles;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A composite prompt: named soft-prompt blocks (e.g. base / domain / instance), each with its own
 * length, init and learning rate, stacked in order at the input. Blocks can be frozen one by one
 * and reused across tasks (init {@code FROM_ADAPTER} takes the block of the same name from a
 * saved composite adapter). Saved as a PEFT prompt-tuning adapter of the concatenated blocks plus
 * {@code ptune_composite.json} naming them. Immutable; build it with {@link #builder()}.
 *
 * @param blocks the blocks, in input order (at least one; names unique; not all frozen)
 * @param seed seeds the blocks' random init
 */
public record CompositePromptConfig(List<PromptBlock> blocks, long seed) implements PromptMethodConfig {

    public CompositePromptConfig {
        blocks = List.copyOf(blocks == null ? List.of() : blocks);
        if (blocks.isEmpty()) {
            throw new InvalidConfigException("blocks", "a composite prompt needs at least one block");
        }
        Set<String> names = new HashSet<>();
        for (PromptBlock block : blocks) {
            if (!names.add(block.name())) {
                throw new InvalidConfigException("blocks", "two blocks are named '" + block.name()
                        + "'; block names must be unique");
            }
        }
        if (blocks.stream().allMatch(PromptBlock::frozen)) {
            throw new InvalidConfigException("blocks", "every block is frozen, so nothing would train;"
                    + " unfreeze at least one block");
        }
    }

    @Override
    public PromptMethod method() {
        return PromptMethod.COMPOSITE;
    }

    /** The sum of the blocks' virtual tokens. */
    @Override
    public int numVirtualTokens() {
        return blocks.stream().mapToInt(PromptBlock::numVirtualTokens).sum();
    }

    /** The first row of block {@code i} in the concatenated prompt. */
    public int blockOffset(int i) {
        int offset = 0;
        for (int b = 0; b < i; b++) {
            offset += blocks.get(b).numVirtualTokens();
        }
        return offset;
    }

    /**
     * Reads a JSON list of blocks ({@link PromptBlock} describes one) from {@code node}.
     *
     * @param source the file, for messages and to resolve relative adapter directories
     */
    public static List<PromptBlock> blocksFromJson(JsonNode node, Path source) {
        if (node == null || !node.isArray()) {
            throw new InvalidConfigException("blocks", source + " must hold a JSON list of blocks like"
                    + " [{\"name\": \"base\", \"num_virtual_tokens\": 8, \"init\": \"random\"}]");
        }
        Path base = source == null ? null : source.toAbsolutePath().getParent();
        List<PromptBlock> blocks = new ArrayList<>();
        for (int i = 0; i < node.size(); i++) {
            blocks.add(PromptBlock.fromJson(node.get(i), source + ": block " + i, base));
        }
        return blocks;
    }

    /** Reads a blocks file (what {@code ptune train --blocks FILE} takes). */
    public static List<PromptBlock> readBlocksFile(Path file) {
        JsonNode node;
        try {
            node = JsonFiles.MAPPER.readTree(java.nio.file.Files.readAllBytes(file));
        } catch (java.nio.file.NoSuchFileException e) {
            throw new InvalidConfigException("blocks", file + " does not exist; give a JSON file with a list of"
                    + " blocks");
        } catch (java.io.IOException e) {
            throw new InvalidConfigException("blocks", file + " is not readable JSON: " + e.getMessage());
        }
        return blocksFromJson(node, file);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builder; at least one {@link #addBlock} is required. */
    public static final class Builder {
        private final List<PromptBlock> blocks = new ArrayList<>();
        private long seed = 42;

        private Builder() {}

        /** Appends a block (after the ones added before). */
        public Builder addBlock(PromptBlock block) {
            blocks.add(block);
            return this;
        }

        /** Appends a trainable block at the trainer's learning rate. */
        public Builder addBlock(String name, int numVirtualTokens, PromptInitSpec initialization) {
            return addBlock(PromptBlock.of(name, numVirtualTokens, initialization));
        }

        /** Appends every block of the list. */
        public Builder blocks(List<PromptBlock> list) {
            blocks.addAll(list);
            return this;
        }

        /** Default 42. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** @throws InvalidConfigException naming the field that is missing or out of range */
        public CompositePromptConfig build() {
            return new CompositePromptConfig(blocks, seed);
        }
    }
}
