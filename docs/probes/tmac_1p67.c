// A probe, not part of the crate: a T-MAC-style table-lookup GEMV for ternary weights at 1.67
// bits per weight, to see whether fewer bytes than I2_S's 2 bits pay for the lookups on this
// machine (docs/PERFORMANCE.md, "Issue 6, eighth session").
//
// Layout: 3 weights (t0, t1, t2) -> v = 9*t0 + 3*t1 + t2 in -13..13, stored as a sign bit and
// a 4-bit magnitude |v|. 64-row tiles; per 8 groups (24 weights) a tile holds 4 x 64 bytes of
// magnitude nibbles (byte r of a 32-byte half: group 2j in the low nibble, 2j+1 in the high) and
// 2 x 32 bytes of sign bits (bit p of byte r: group p of row r). 160 bytes per 32 rows x 24
// weights = 1.67 bits per weight.
// Per token, each group of 3 activations gets a 16-entry table T[m] (the dot of magnitude m's
// digits with the activations, |T| <= 381), split as T = 27*H + L with |L| <= 13, |H| <= 14 so
// that both halves are bytes: one pshufb each per 32 rows, the row's sign applied with
// sign_epi8, and 8 groups summed in i8 before one maddubs(1, 27) widens them to i16. Exact.
//
// Build: gcc -O3 -march=haswell -fopenmp tmac_1p67.c -o tmac_1p67
// Run:   ./tmac_1p67 6912 2560 1 201   (one matrix, stays in L3: the compute rate)
//        ./tmac_1p67 6912 2560 24 21   (24 matrices, 89 MB: streamed from DRAM, as decode does)
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <omp.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static uint64_t rs=88172645463325252ull; static uint64_t rnd(){rs^=rs<<13;rs^=rs>>7;rs^=rs<<17;return rs;}
// balanced ternary digits of m (0..13): t0*9+t1*3+t2
static int T0[16],T1[16],T2[16];
static void init_digits(){ for(int m=0;m<16;m++){T0[m]=T1[m]=T2[m]=0;} for(int a=-1;a<=1;a++)for(int b=-1;b<=1;b++)for(int c=-1;c<=1;c++){int v=9*a+3*b+c; if(v>=0){T0[v]=a;T1[v]=b;T2[v]=c;}}}
typedef struct { int M,K,G,NB; uint8_t *w; } Mat; // G groups padded to mult of 8, NB=G/8 blocks
static void pack(Mat*m,const int8_t*codes){ // codes M x K in {-1,0,1}
  int M=m->M,K=m->K; m->G=((K+2)/3+7)/8*8; m->NB=m->G/8;
  m->w=aligned_alloc(64,(size_t)M/32*m->NB*160); memset(m->w,0,(size_t)M/32*m->NB*160);
  for(int r=0;r<M;r++) for(int g=0;g<m->G;g++){
    int t[3]; for(int i=0;i<3;i++){int k=3*g+i; t[i]= k<K? codes[(size_t)r*K+k]:0;}
    int v=9*t[0]+3*t[1]+t[2]; int s=v<0; int mag=s?-v:v;
    uint8_t*blk=m->w+((size_t)(r/64)*m->NB+g/8)*320; int p=g%8; int h=(r%64)/32;
    blk[64*(p/2)+32*h+r%32] |= mag<<(4*(p%2)); if(s) blk[256+32*h+r%32]|=1<<p; }
}
// The per-token tables: 32 bytes per group (L then H).
static void build_lut(const int8_t*x,int K,int G,int8_t*lut){
  for(int g=0;g<G;g++){ int a[3]; for(int i=0;i<3;i++){int k=3*g+i;a[i]=k<K?x[k]:0;}
    for(int m=0;m<16;m++){ int T= m<14? T0[m]*a[0]+T1[m]*a[1]+T2[m]*a[2]:0; int H=(T>=0? (T+13)/27 : -((-T+13)/27)); int L=T-27*H;
      lut[g*32+m]=L; lut[g*32+16+m]=H; } }
}
#define PLANE(p, idxA, idxB) { \
  __m256i TL=_mm256_broadcastsi128_si256(_mm_load_si128((const __m128i*)(lut+(g0+(p))*32))); \
  __m256i TH=_mm256_broadcastsi128_si256(_mm_load_si128((const __m128i*)(lut+(g0+(p))*32+16))); \
  __m256i mA=_mm256_or_si256(_mm256_slli_epi16(sA,7-(p)),one8), mB=_mm256_or_si256(_mm256_slli_epi16(sB,7-(p)),one8); \
  aLA=_mm256_add_epi8(aLA,_mm256_sign_epi8(_mm256_shuffle_epi8(TL,idxA),mA)); \
  aHA=_mm256_add_epi8(aHA,_mm256_sign_epi8(_mm256_shuffle_epi8(TH,idxA),mA)); \
  aLB=_mm256_add_epi8(aLB,_mm256_sign_epi8(_mm256_shuffle_epi8(TL,idxB),mB)); \
  aHB=_mm256_add_epi8(aHB,_mm256_sign_epi8(_mm256_shuffle_epi8(TH,idxB),mB)); }
// rows [t0*32, t1*32) in tile pairs; out i32
static void gemv(const Mat*m,const int8_t*lut,int tp0,int tp1,int32_t*out){
  const __m256i low4=_mm256_set1_epi8(15), one8=_mm256_set1_epi8(1), c27=_mm256_set1_epi16(27<<8|1);
  int NB=m->NB;
  for(int tp=tp0;tp<tp1;tp++){
    const uint8_t*A=m->w+(size_t)tp*NB*320;
    __m256i accA0=_mm256_setzero_si256(),accA1=accA0,accB0=accA0,accB1=accA0;
    int32_t wide[128]; memset(wide,0,sizeof wide);
    for(int b=0;b<NB;b++){
      const uint8_t*a=A+(size_t)b*320; int g0=8*b;
      for(int l=0;l<5;l++) _mm_prefetch((const char*)a+320*4+64*l,_MM_HINT_T0); // 4 blocks ahead
      __m256i sA=_mm256_load_si256((const __m256i*)(a+256)), sB=_mm256_load_si256((const __m256i*)(a+288));
      __m256i aLA=_mm256_setzero_si256(),aHA=aLA,aLB=aLA,aHB=aLA;
      #define PAIR(j) { __m256i iA=_mm256_load_si256((const __m256i*)(a+64*j)), iB=_mm256_load_si256((const __m256i*)(a+64*j+32)); \
        __m256i loA=_mm256_and_si256(iA,low4), hiA=_mm256_and_si256(_mm256_srli_epi16(iA,4),low4); \
        __m256i loB=_mm256_and_si256(iB,low4), hiB=_mm256_and_si256(_mm256_srli_epi16(iB,4),low4); \
        PLANE(2*j,loA,loB) PLANE(2*j+1,hiA,hiB) }
      PAIR(0) PAIR(1) PAIR(2) PAIR(3)
      accA0=_mm256_add_epi16(accA0,_mm256_maddubs_epi16(c27,_mm256_unpacklo_epi8(aLA,aHA)));
      accA1=_mm256_add_epi16(accA1,_mm256_maddubs_epi16(c27,_mm256_unpackhi_epi8(aLA,aHA)));
      accB0=_mm256_add_epi16(accB0,_mm256_maddubs_epi16(c27,_mm256_unpacklo_epi8(aLB,aHB)));
      accB1=_mm256_add_epi16(accB1,_mm256_maddubs_epi16(c27,_mm256_unpackhi_epi8(aLB,aHB)));
      if((b&7)==7||b==NB-1){ __m256i v[4]={accA0,accA1,accB0,accB1};
        for(int q=0;q<4;q++){ __m256i lo=_mm256_cvtepi16_epi32(_mm256_castsi256_si128(v[q])), hi=_mm256_cvtepi16_epi32(_mm256_extracti128_si256(v[q],1));
          __m256i*w=(__m256i*)(wide+32*q); w[0]=_mm256_add_epi32(w[0],lo); w[1]=_mm256_add_epi32(w[1],hi);} 
        accA0=accA1=accB0=accB1=_mm256_setzero_si256(); }
    }
    // unscramble: v[q] for q=0 (unpacklo of tile A): i16 lanes = rows 0..7 (lane0) , 16..23 (lane1); cvt lo half -> rows0..7 ; hi half -> rows 16..23
    for(int t=0;t<2;t++){ int32_t*o=out+(size_t)(2*tp+t)*32; int32_t*wl=wide+64*t, *wh=wide+64*t+32;
      for(int i=0;i<8;i++){o[i]=wl[i];o[16+i]=wl[8+i];o[8+i]=wh[i];o[24+i]=wh[8+i];} }
  }
}
int main(int argc,char**argv){ init_digits();
  int M=atoi(argv[1]),K=atoi(argv[2]); int copies=argc>3?atoi(argv[3]):1; int reps=argc>4?atoi(argv[4]):50;
  int8_t*codes=malloc((size_t)M*K); for(size_t i=0;i<(size_t)M*K;i++) codes[i]=(int)(rnd()%3)-1;
  Mat*mats=malloc(sizeof(Mat)*copies); for(int c=0;c<copies;c++){mats[c].M=M;mats[c].K=K;pack(&mats[c],codes);} 
  int8_t*x=malloc(K); for(int k=0;k<K;k++) x[k]=(int)(rnd()%255)-127;
  int G=mats[0].G; int8_t*lut=aligned_alloc(64,G*32); build_lut(x,K,G,lut);
  int32_t*out=aligned_alloc(64,M*4); gemv(&mats[0],lut,0,M/64,out);
  for(int r=0;r<M;r++){ long s=0; for(int k=0;k<K;k++) s+=codes[(size_t)r*K+k]*x[k]; if(s!=out[r]){printf("MISMATCH row %d: %ld vs %d\n",r,s,out[r]);return 1;} }
  printf("exact ok. bytes/matrix %.2f MB (%.3f bits/w)\n",(double)M/32*mats[0].NB*160/1e6,(double)M/32*mats[0].NB*160*8/((double)M*K));
  for(int th=1;th<=2;th++){ double med[64]; int n=0;
    for(int rep=0;rep<reps && rep<64;rep++){ double t0=now();
      #pragma omp parallel num_threads(th)
      { int id=omp_get_thread_num(); int tps=M/64; int a=tps*id/th, b=tps*(id+1)/th;
        for(int c=0;c<copies;c++){ gemv(&mats[c],lut,a,b,out);
          #pragma omp barrier
        } }
      med[n++]=now()-t0; }
    for(int i=0;i<n;i++)for(int j=i+1;j<n;j++) if(med[j]<med[i]){double t=med[i];med[i]=med[j];med[j]=t;}
    double t=med[n/2]; double bytes=(double)M/32*mats[0].NB*160*copies;
    printf("threads %d: median %.3f ms, %.2f GB/s, %.1f G weights/s\n",th,t*1e3,bytes/t/1e9,(double)M*K*copies/t/1e9);}
}
