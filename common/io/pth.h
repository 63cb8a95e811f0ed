/* PyTorch checkpoints (torch.save of a plain state dict of tensors): the zip format
   (torch >= 1.6: ARCHIVE/data.pkl + ARCHIVE/data/<key>) and the legacy format (consecutive
   pickles: magic, protocol, sys_info, the object, storage keys, then raw storages). Only the
   pickle subset a state dict needs is interpreted; any other opcode or global class is
   refused, never executed. Tensors honour size, stride and storage offset (pytorch-fid's
   Inception weights are stored strided) and come out contiguous in an st_file, so models load
   .pth and .safetensors through the same st_load_entries. */
#ifndef PTH_H
#define PTH_H
#include <stddef.h>
#include "io/st.h"

/* Fills f with every tensor of the state dict (F32, F64, F16, BF16, I64, I32, U8, BOOL kept
   as stored, made contiguous); st_close frees it. */
int pth_open(struct st_file *f, const char *path, char *msg, size_t msglen);
#endif
